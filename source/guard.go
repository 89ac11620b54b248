package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// blockedPrefixes are the address ranges a hosted service must not be
// turned into a proxy for, beyond what netip.Addr's predicates cover.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a reserved"},                // "this network"
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT"},   // RFC 6598
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved"},             // IETF protocol assignments
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking"},        // RFC 2544
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved"},              // class E and broadcast
	{netip.MustParsePrefix("fec0::/10"), "a site-local"},              // deprecated, still routed in places
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local NAT64"},        // RFC 8215
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation"},       // never on the Internet
	{netip.MustParsePrefix("100::/64"), "a discard"},                  // RFC 6666
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated"},  // RFC 2765
	{netip.MustParsePrefix("2002::/16"), "a 6to4"},                    // embeds any IPv4 address
	{netip.MustParsePrefix("2001::/32"), "a Teredo"},                  // embeds any IPv4 address
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64"},                // embeds any IPv4 address
	{netip.MustParsePrefix("169.254.169.254/32"), "a cloud metadata"}, // also link-local; named for the message
}

// addressKind says why ip is not a public unicast address ("a loopback",
// "a private", ...), or "" when it is one.
func addressKind(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(ip) && b.kind == "a cloud metadata" {
			return b.kind
		}
	}
	switch {
	case !ip.IsValid():
		return "an invalid"
	case ip.IsLoopback():
		return "a loopback"
	case ip.IsPrivate():
		return "a private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local"
	case ip.IsUnspecified():
		return "an unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast"
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(ip) {
			return b.kind
		}
	}
	return ""
}

// BlockedAddressError is a connection thumbd refused to make: the source's
// host is, or resolves to, an address on a private, loopback or link-local
// network, and the operator has not allowed such sources.
type BlockedAddressError struct {
	Host         string // as the URL named it
	IP           netip.Addr
	Kind         string // "a loopback", "a private", ...
	RedirectedTo string // the URL a redirect led to, without credentials
}

func (e *BlockedAddressError) Error() string {
	var where string
	switch {
	case e.RedirectedTo != "" && e.Host != "":
		return fmt.Sprintf("the source redirected to %s, whose host %s is %s address, and this server does not read sources on private, loopback or link-local networks (THUMBD_ALLOW_PRIVATE_SOURCES)", e.RedirectedTo, e.Host, e.Kind)
	case e.Host != "" && e.IP.IsValid() && e.IP.String() != trimBrackets(e.Host):
		where = fmt.Sprintf("host %s (%s) is", e.Host, e.IP)
	case e.Host != "":
		where = fmt.Sprintf("host %s is", e.Host)
	default:
		where = fmt.Sprintf("connection would go to %s,", e.IP)
	}
	return fmt.Sprintf("the source's %s %s address, and this server does not read sources on private, loopback or link-local networks (THUMBD_ALLOW_PRIVATE_SOURCES)", where, e.Kind)
}

// checkLiteral refuses a host that is an IP address in a blocked range, or
// a name that always means this machine, before any connection is tried.
func checkLiteral(host string) error {
	if ip, err := netip.ParseAddr(trimBrackets(host)); err == nil {
		if kind := addressKind(ip); kind != "" {
			return &BlockedAddressError{Host: host, IP: ip.Unmap(), Kind: kind}
		}
		return nil
	}
	switch h := strings.TrimSuffix(lowerASCII(host), "."); {
	case h == "localhost", hasSuffix(h, ".localhost"), h == "localhost.localdomain":
		return &BlockedAddressError{Host: host, Kind: "a loopback"}
	}
	return nil
}

// dialer returns a net.Dialer whose connections may only reach public
// addresses, unless allowPrivate. The check runs on the address actually
// dialed, after name resolution and on every redirect, so neither DNS
// rebinding nor a redirect to 127.0.0.1 gets around it.
func dialer(allowPrivate bool, timeout time.Duration, exempt func(netip.AddrPort) bool) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if allowPrivate {
		return d
	}
	d.ControlContext = func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("source: unexpected dial address %q", address)
		}
		if exempt != nil && exempt(ap) {
			return nil
		}
		if kind := addressKind(ap.Addr()); kind != "" {
			return &BlockedAddressError{IP: ap.Addr().Unmap(), Kind: kind}
		}
		return nil
	}
	return d
}

func asBlocked(err error) (*BlockedAddressError, bool) {
	var b *BlockedAddressError
	ok := errors.As(err, &b)
	return b, ok
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// checkHost is checkLiteral unless private sources are allowed, or the
// address is exempt (tests).
func (g *Gateway) checkHost(host, port string) error {
	if g.cfg.AllowPrivate {
		return nil
	}
	if g.cfg.exempt != nil {
		if ap, err := netip.ParseAddrPort(net.JoinHostPort(trimBrackets(host), port)); err == nil && g.cfg.exempt(ap) {
			return nil
		}
	}
	return checkLiteral(host)
}
