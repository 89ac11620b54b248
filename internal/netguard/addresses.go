package netguard

import "net/netip"

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

// AddressKind says why ip is not a public unicast address ("a loopback",
// "a private", ...), or "" when it is one.
func AddressKind(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
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
