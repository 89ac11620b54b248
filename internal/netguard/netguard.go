// Package netguard keeps thumbd's outbound connections (sources, S3
// destinations, callbacks) off the operator's own networks: a query must
// not turn a hosted thumbd into a proxy into them.
//
// A Guard checks the address each connection actually dials, after name
// resolution and on every redirect, so neither a DNS name that points at
// 127.0.0.1 (or is re-bound to it after a first, public answer) nor a
// redirect to a private address gets around it. CheckHost refuses literal
// addresses and names such as "localhost" earlier, before any connection,
// so that a query can be refused with a clear message when it arrives.
//
// By default every loopback, private, link-local, multicast and reserved
// address is refused. A Policy allows them all (a trusted network, the
// tests) or only some networks (a storage server on the LAN).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Policy says which addresses outbound connections may reach beyond the
// public Internet. The zero Policy allows none.
type Policy struct {
	// AllowPrivate lets connections reach every address: loopback,
	// private, link-local and the rest.
	AllowPrivate bool
	// Allowed are networks connections may reach although they are not
	// public, such as 10.1.2.0/24 for a storage server on the LAN.
	Allowed []netip.Prefix
}

// ParseNetworks parses a comma-separated list of networks (10.0.0.0/8) and
// single addresses (192.168.1.5, ::1) into prefixes.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(strings.Trim(f, "[]"))
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%q is not a network (10.0.0.0/8) or an address (10.1.2.3)", f)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// Resolver looks up a host's addresses. *net.Resolver implements it; tests
// give one that maps names of their own to the addresses they want.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard applies a Policy to connections. A Guard is immutable and safe for
// concurrent use; the With methods return changed copies.
type Guard struct {
	policy   Policy
	subject  string // "the source", named in errors; may be empty
	resolver Resolver
	timeout  time.Duration
}

// New returns a Guard that applies p, with a 10 s connect timeout.
func New(p Policy) *Guard {
	p.Allowed = append([]netip.Prefix(nil), p.Allowed...)
	return &Guard{policy: p, timeout: 10 * time.Second}
}

// Default is the guard of the zero Policy: public addresses only.
func Default() *Guard { return New(Policy{}) }

// For returns a copy of g whose errors name subject, such as "the source"
// or "the callback".
func (g *Guard) For(subject string) *Guard {
	c := *g
	c.subject = subject
	return &c
}

// WithResolver returns a copy of g that resolves names with r instead of
// the system's resolver.
func (g *Guard) WithResolver(r Resolver) *Guard {
	c := *g
	c.resolver = r
	return &c
}

// WithTimeout returns a copy of g whose connections time out after d.
func (g *Guard) WithTimeout(d time.Duration) *Guard {
	c := *g
	if d > 0 {
		c.timeout = d
	}
	return &c
}

// Policy returns the policy g applies.
func (g *Guard) Policy() Policy { return g.policy }

// Refuses says why a connection to ip is refused ("a loopback", "a
// private", ...), or "" when it is allowed.
func (g *Guard) Refuses(ip netip.Addr) string {
	if g.policy.AllowPrivate {
		return ""
	}
	ip = ip.Unmap()
	kind := AddressKind(ip)
	if kind == "" {
		return ""
	}
	for _, p := range g.policy.Allowed {
		if p.Contains(ip) {
			return ""
		}
	}
	return kind
}

// CheckHost refuses, before any connection, a host that is an address g
// refuses, or a name that always means this machine ("localhost"). A host
// that is any other name is left to the dialer, which checks what it
// resolves to. IPv6 addresses may come with brackets.
func (g *Guard) CheckHost(host string) error {
	if g.policy.AllowPrivate {
		return nil
	}
	bare := trimBrackets(host)
	if ip, err := netip.ParseAddr(bare); err == nil {
		ip = ip.WithZone("")
		if kind := g.Refuses(ip); kind != "" {
			return &BlockedError{Subject: g.subject, Host: host, IP: ip.Unmap(), Kind: kind}
		}
		return nil
	}
	if isLocalName(bare) && g.Refuses(netip.AddrFrom4([4]byte{127, 0, 0, 1})) != "" && g.Refuses(netip.IPv6Loopback()) != "" {
		return &BlockedError{Subject: g.subject, Host: host, Kind: "a loopback"}
	}
	return nil
}

// isLocalName reports whether a host name always means this machine.
func isLocalName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "localhost.localdomain"
}

// DialContext connects like net.Dialer.DialContext, refusing any address g
// refuses. The check runs on the address about to be dialed, after name
// resolution, so it holds for every connection an http.Transport makes,
// redirects included.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := &net.Dialer{Timeout: g.timeout, KeepAlive: 30 * time.Second}
	if g.policy.AllowPrivate {
		return d.DialContext(ctx, network, address)
	}
	d.ControlContext = g.control
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err == nil || g.resolver == nil {
		c, err := d.DialContext(ctx, network, address)
		return c, g.named(err, host)
	}
	ips, err := g.resolver.LookupNetIP(ctx, lookupNetwork(network), host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if len(ips) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	var first, blocked error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if _, ok := AsBlocked(err); ok && blocked == nil {
			blocked = err
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if blocked != nil {
		// Why the host cannot be reached at all, rather than why one of
		// its public addresses did not answer.
		first = blocked
	}
	return nil, g.named(first, host)
}

// control refuses a connection about to be made to a refused address.
func (g *Guard) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: unexpected dial address %q", address)
	}
	if kind := g.Refuses(ap.Addr()); kind != "" {
		return &BlockedError{Subject: g.subject, IP: ap.Addr().Unmap(), Kind: kind}
	}
	return nil
}

// named adds the host that was dialed to a BlockedError in err.
func (g *Guard) named(err error, host string) error {
	if b, ok := AsBlocked(err); ok && b.Host == "" {
		b.Host = host
	}
	return err
}

func lookupNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// Transport returns an http.Transport like http.DefaultTransport whose
// connections g checks. It uses no proxy: a proxy would dial for it, past
// the check.
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.DialContext
	t.DialTLSContext = nil
	return t
}

// CheckRedirect returns an http.Client CheckRedirect that follows at most
// max redirects, only to http(s) URLs, and refuses one whose host
// CheckHost refuses, naming where it led (without credentials). Hosts that
// are names are checked again when dialed.
func (g *Guard) CheckRedirect(max int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > max {
			return &RedirectError{Msg: fmt.Sprintf("%s redirected more than %d times", orDefault(g.subject, "the server"), max)}
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return &RedirectError{Msg: fmt.Sprintf("%s redirected to a %s: URL, which is not followed", orDefault(g.subject, "the server"), req.URL.Scheme)}
		}
		if err := g.CheckHost(req.URL.Hostname()); err != nil {
			if b, ok := AsBlocked(err); ok {
				b.RedirectedTo = ShowURL(req.URL.String())
			}
			return err
		}
		return nil
	}
}

// RedirectError is too many redirects, or a redirect to something that is
// not http(s).
type RedirectError struct{ Msg string }

func (r *RedirectError) Error() string { return r.Msg }

// Client returns an http.Client whose every connection g checks, that
// follows at most maxRedirects redirects (CheckRedirect), and times out
// after timeout (0: never).
func (g *Guard) Client(timeout time.Duration, maxRedirects int) *http.Client {
	return &http.Client{Transport: g.Transport(), CheckRedirect: g.CheckRedirect(maxRedirects), Timeout: timeout}
}

// BlockedError is a connection thumbd refused to make: its host is, or
// resolves to, an address on a network the Policy does not allow.
type BlockedError struct {
	Subject      string     // "the source", ...; may be empty
	Host         string     // as the URL named it; empty when only the address is known
	IP           netip.Addr // the address refused; invalid when the host is a name refused as such
	Kind         string     // "a loopback", "a private", ...
	RedirectedTo string     // the URL a redirect led to, without credentials
}

// Setting is how the error names the settings that allow more networks.
const Setting = "THUMBD_ALLOW_PRIVATE_NETWORKS or THUMBD_ALLOWED_NETWORKS"

func (e *BlockedError) Error() string {
	whose := "the host"
	if e.Subject != "" {
		whose = e.Subject + "'s host"
	}
	var what string
	switch {
	case e.RedirectedTo != "" && e.Host != "":
		what = fmt.Sprintf("%s redirected to %s, whose host %s is %s address", orDefault(e.Subject, "the server"), e.RedirectedTo, e.Host, e.Kind)
	case e.Host != "" && e.IP.IsValid() && e.IP.String() != trimBrackets(e.Host):
		if _, err := netip.ParseAddr(trimBrackets(e.Host)); err == nil {
			what = fmt.Sprintf("%s %s (%s) is %s address", whose, e.Host, e.IP, e.Kind)
		} else {
			what = fmt.Sprintf("%s %s resolves to %s, %s address", whose, e.Host, e.IP, e.Kind)
		}
	case e.Host != "":
		what = fmt.Sprintf("%s %s is %s address", whose, e.Host, e.Kind)
	default:
		what = fmt.Sprintf("%s would connect to %s, %s address", orDefault(e.Subject, "thumbd"), e.IP, e.Kind)
	}
	return what + ", and this server does not connect to private, loopback or link-local addresses (" + Setting + ")"
}

// AsBlocked finds a *BlockedError in err's chain.
func AsBlocked(err error) (*BlockedError, bool) {
	var b *BlockedError
	ok := errors.As(err, &b)
	return b, ok
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}
