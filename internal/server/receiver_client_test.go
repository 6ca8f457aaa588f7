package server

import (
	"net/netip"
	"testing"
)

// TestClientOf: a client is an IPv4 address (also when mapped into IPv6)
// or an IPv6 /64, so that one host cannot take the others' share by
// changing addresses within its prefix.
func TestClientOf(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"fe80::1%eth0", "fe80::2"},
	} {
		if a, b := clientOf(netip.MustParseAddr(tc.a)), clientOf(netip.MustParseAddr(tc.b)); a != b {
			t.Errorf("%s and %s are clients %s and %s, want one", tc.a, tc.b, a, b)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
	} {
		if a, b := clientOf(netip.MustParseAddr(tc.a)), clientOf(netip.MustParseAddr(tc.b)); a == b {
			t.Errorf("%s and %s are one client %s, want two", tc.a, tc.b, a)
		}
	}
}
