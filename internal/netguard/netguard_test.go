package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAddressKind(t *testing.T) {
	tests := []struct {
		ip   string
		want string // "" for a public address
	}{
		{"127.0.0.1", "a loopback"},
		{"127.5.6.7", "a loopback"},
		{"::1", "a loopback"},
		{"::ffff:127.0.0.1", "a loopback"},
		{"10.1.2.3", "a private"},
		{"172.16.0.1", "a private"},
		{"172.31.255.255", "a private"},
		{"192.168.1.1", "a private"},
		{"fd00::1", "a private"},
		{"169.254.169.254", "a cloud metadata"},
		{"169.254.1.1", "a link-local"},
		{"fe80::1", "a link-local"},
		{"fe80::1%eth0", "a link-local"},
		{"0.0.0.0", "an unspecified"},
		{"::", "an unspecified"},
		{"100.64.0.1", "a carrier-grade NAT"},
		{"224.0.0.1", "a link-local"},
		{"239.1.2.3", "a multicast"},
		{"255.255.255.255", "a reserved"},
		{"64:ff9b::a00:1", "a NAT64"},
		{"2002:7f00:1::", "a 6to4"},
		{"8.8.8.8", ""},
		{"93.184.216.34", ""},
		{"172.32.0.1", ""},
		{"2606:4700:4700::1111", ""},
	}
	for _, tt := range tests {
		if got := AddressKind(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("AddressKind(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the prefixes, space-separated
		wantErr bool
	}{
		{in: "", want: ""},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: " 10.1.2.3/8 , 192.168.1.5,::1, [fd00::2]", want: "10.0.0.0/8 192.168.1.5/32 ::1/128 fd00::2/128"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "localhost", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseNetworks(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseNetworks(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if err == nil && strings.Join(s, " ") != tt.want {
			t.Errorf("ParseNetworks(%q) = %q, want %q", tt.in, strings.Join(s, " "), tt.want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	lan := New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("127.0.0.1/32")}})
	tests := []struct {
		name string
		g    *Guard
		host string
		want string // "" when allowed
	}{
		{"public address", Default(), "93.184.216.34", ""},
		{"public name", Default(), "example.com", ""},
		{"loopback", Default(), "127.0.0.1", "host 127.0.0.1 is a loopback address"},
		{"IPv6 loopback in brackets", Default(), "[::1]", "host [::1] is a loopback address"},
		{"IPv6 loopback", Default(), "::1", "host ::1 is a loopback address"},
		{"mapped IPv4", Default(), "::ffff:127.0.0.1", "host ::ffff:127.0.0.1 (127.0.0.1) is a loopback address"},
		{"unspecified", Default(), "0.0.0.0", "host 0.0.0.0 is an unspecified address"},
		{"localhost", Default(), "localhost", "host localhost is a loopback address"},
		{"localhost with a dot and capitals", Default(), "LocalHost.", "is a loopback address"},
		{"a name under localhost", Default(), "api.localhost", "is a loopback address"},
		{"metadata", Default(), "169.254.169.254", "is a cloud metadata address"},
		{"subject", Default().For("the callback"), "10.0.0.1", "the callback's host 10.0.0.1 is a private address"},
		{"allowed network", lan, "10.1.2.3", ""},
		{"outside the allowed network", lan, "10.1.3.3", "host 10.1.3.3 is a private address"},
		{"allowed loopback address", lan, "127.0.0.1", ""},
		{"another loopback address", lan, "127.0.0.2", "is a loopback address"},
		{"localhost when loopback is allowed", lan, "localhost", ""},
		{"everything allowed", New(Policy{AllowPrivate: true}), "127.0.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.CheckHost(tt.host)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckHost(%q) = %v, want nil", tt.host, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "THUMBD_ALLOW_PRIVATE_NETWORKS") {
				t.Fatalf("CheckHost(%q) = %v, want an error saying %q and naming the setting", tt.host, err, tt.want)
			}
			if _, ok := AsBlocked(err); !ok {
				t.Fatalf("CheckHost(%q) = %T, want a *BlockedError", tt.host, err)
			}
		})
	}
}

// counting is a loopback listener that counts the connections it accepts.
type counting struct {
	net.Listener
	n atomic.Int64
}

func listen(t *testing.T, addr string) *counting {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	c := &counting{Listener: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

// mapResolver resolves the names it holds, and no others.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := m[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDialContext dials a loopback listener in each way a URL could lead
// there: each refused dial must fail before any packet is sent.
func TestDialContext(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	at := func(host string) string { return net.JoinHostPort(host, itoa(port)) }
	evil := mapResolver{
		"evil.test":  {netip.MustParseAddr("127.0.0.1")},
		"mixed.test": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
	}
	tests := []struct {
		name string
		g    *Guard
		addr string
		want string // "" when the dial must arrive
	}{
		{"loopback address", Default(), at("127.0.0.1"), "the host 127.0.0.1 is a loopback address"},
		{"system name for loopback", Default(), at("localhost"), "host localhost resolves to "},
		{"name resolving to loopback", Default().WithResolver(evil), at("evil.test"), "host evil.test resolves to 127.0.0.1, a loopback address"},
		{"name with a public and a loopback address", Default().WithResolver(evil).WithTimeout(300 * time.Millisecond), at("mixed.test"), "evil"},
		{"everything allowed", New(Policy{AllowPrivate: true}), at("127.0.0.1"), ""},
		{"allowed address", New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}), at("127.0.0.1"), ""},
		{"allowed address by name", New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).WithResolver(evil), at("evil.test"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ln.n.Load()
			c, err := tt.g.DialContext(context.Background(), "tcp", tt.addr)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("dial %s: %v", tt.addr, err)
				}
				c.Close()
				deadline := time.Now().Add(2 * time.Second)
				for ln.n.Load() == before && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if ln.n.Load() == before {
					t.Fatal("the allowed dial did not arrive")
				}
				return
			}
			if c != nil {
				c.Close()
			}
			b, ok := AsBlocked(err)
			if !ok {
				t.Fatalf("dial %s = %v, want a *BlockedError", tt.addr, err)
			}
			if tt.want != "evil" && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("dial %s: %v, want %q", tt.addr, err, tt.want)
			}
			if b.Kind != "a loopback" {
				t.Fatalf("kind %q, want a loopback", b.Kind)
			}
			time.Sleep(50 * time.Millisecond)
			if n := ln.n.Load() - before; n != 0 {
				t.Fatalf("the refused dial reached the listener (%d connections)", n)
			}
		})
	}
}

// TestRedirects follows redirects with a guarded client: a server on an
// allowed address (standing for a public host) redirects to a refused one,
// by address and by a name that resolves to it. The refused server must
// receive nothing.
func TestRedirects(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("internal secret"))
	}))
	defer target.Close()
	port := target.Listener.Addr().(*net.TCPAddr).Port

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	public := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		http.Redirect(w, r, to, http.StatusFound)
	})}}
	public.Start()
	defer public.Close()

	g := New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}).
		WithResolver(mapResolver{"evil.test": {netip.MustParseAddr("127.0.0.1")}, "public.test": {netip.MustParseAddr("127.0.0.2")}}).
		For("the callback")
	c := g.Client(5*time.Second, 3)
	tests := []struct {
		name, to, want string
	}{
		{"to a loopback address", "http://127.0.0.1:" + itoa(port) + "/admin?token=SECRET", "the callback redirected to http://127.0.0.1:" + itoa(port) + "/admin?…, whose host 127.0.0.1 is a loopback address"},
		{"to localhost", "http://u:PASS@localhost:" + itoa(port) + "/", "whose host localhost is a loopback address"},
		{"to a name that resolves to loopback", "http://evil.test:" + itoa(port) + "/", "the callback's host evil.test resolves to 127.0.0.1, a loopback address"},
		{"to a file", "file:///etc/passwd", "redirected to a file: URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Get(public.URL + "/hook?to=" + url.QueryEscape(tt.to))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %s, want the redirect refused", resp.Status)
			}
			// *url.Error quotes the URL as it is; callers show its Err.
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("%v is not a *url.Error", err)
			}
			err = ue.Err
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want %q", err, tt.want)
			}
			for _, secret := range []string{"SECRET", "PASS"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
		})
	}
	// The allowed host itself, by name, is reached.
	resp, err := c.Get("http://public.test:" + itoa(public.Listener.Addr().(*net.TCPAddr).Port) + "/hook?to=/self")
	if err == nil {
		resp.Body.Close()
	}
	var re *RedirectError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "redirected more than 3 times") {
		t.Fatalf("a redirect loop on an allowed host: %v, want too many redirects", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the refused server received %d requests", n)
	}
}

func TestShowURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://u:PASS@example.com/hook?auth=TOKEN", "http://example.com/hook?…"},
		{"https://example.com/v.mp4", "https://example.com/v.mp4"},
		{"https://example.com/v.mp4?", "https://example.com/v.mp4?…"},
		{"https://example.com/v.mp4#frag", "https://example.com/v.mp4"},
		{"http://[::1]:80/a b", "http://[::1]:80/a%20b"},
		{"http://%zz", "[unparsable URL]"},
	}
	for _, tt := range tests {
		if got := ShowURL(tt.in); got != tt.want {
			t.Errorf("ShowURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
