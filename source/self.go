package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/thumbd/thumbd/static"
)

// localFile is what a file-backed source is read from: a file on disk, an
// upload, or one of thumbd's embedded files.
type localFile interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
	Close() error
}

// selfBase is one base URL thumbd answers at.
type selfBase struct {
	scheme, host, port, path string
	anyLoopback              bool // the base's host is this machine: any loopback name matches
}

// parseSelf reads the base URLs of Config.Self, ignoring those it cannot
// parse.
func parseSelf(bases []string) []selfBase {
	var out []selfBase
	for _, raw := range bases {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		b := selfBase{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: portOf(u), path: strings.TrimRight(u.Path, "/")}
		if ip, err := netip.ParseAddr(b.host); err == nil {
			b.anyLoopback = ip.IsLoopback() || ip.IsUnspecified()
		} else {
			b.anyLoopback = b.host == "localhost"
		}
		out = append(out, b)
	}
	return out
}

// portOf returns u's port, or its scheme's.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// isLoopbackName reports whether host names this machine's loopback.
func isLoopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// selfPath returns the path of u below the base URL of thumbd it is on,
// and whether it is on one.
func (g *Gateway) selfPath(u *url.URL) (string, bool) {
	host := strings.ToLower(u.Hostname())
	for _, b := range g.self {
		if u.Scheme != b.scheme || portOf(u) != b.port {
			continue
		}
		if host != b.host && !(b.anyLoopback && isLoopbackName(host)) {
			continue
		}
		if rest, ok := strings.CutPrefix(u.Path, b.path); ok && strings.HasPrefix(rest, "/") {
			return rest, true
		}
	}
	return "", false
}

// openSelf opens a source that is one of thumbd's own embedded files
// (under /static/ on its own address), read from the binary and never over
// the network. ok is false for any other source.
func (g *Gateway) openSelf(u *url.URL) (f localFile, shown string, ok bool, err error) {
	p, on := g.selfPath(u)
	if !on || !strings.HasPrefix(p, static.Prefix) {
		return nil, "", false, nil
	}
	shown = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	sf, err := static.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", true, fmt.Errorf("the source is on this thumbd, which has no file %s (its sample video is %s%s): %s", p, static.Prefix, static.Sample, shown)
		}
		return nil, "", true, fmt.Errorf("the source %s cannot be read: %v", shown, err)
	}
	return sf, shown, true, nil
}

// SelfURLs returns the base URLs a thumbd listening on addr answers at:
// publicURL (if set) and http://addr; for Config.Self.
func SelfURLs(publicURL string, addr net.Addr) []string {
	var out []string
	if publicURL != "" {
		out = append(out, publicURL)
	}
	if addr != nil {
		out = append(out, "http://"+addr.String())
	}
	return out
}
