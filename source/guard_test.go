package source

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage/s3store"
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
		if got := addressKind(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("addressKind(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

// TestDialerRefusesPrivateAddresses dials a loopback listener: refused
// before any packet is sent, unless private addresses are allowed.
func TestDialerRefusesPrivateAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, err = dialer(false, time.Second, nil).Dial("tcp", ln.Addr().String())
	var b *BlockedAddressError
	if !errors.As(err, &b) || b.Kind != "a loopback" {
		t.Fatalf("dial with private addresses refused: %v, want a BlockedAddressError", err)
	}
	c, err := dialer(true, time.Second, nil).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with private addresses allowed: %v", err)
	}
	c.Close()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("the allowed dial did not arrive")
	}
	select {
	case <-accepted:
		t.Fatal("the refused dial reached the listener")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestPrivateSourcesRefused checks each way a query could make thumbd read
// from its own network, with THUMBD_ALLOW_PRIVATE_SOURCES off. The origins
// run on loopback; none may receive a request.
func TestPrivateSourcesRefused(t *testing.T) {
	file := clip(t)
	target := startOrigin(t, serveFile(file)) // what an attacker wants read
	// public stands for a host on the Internet that redirects into the
	// private network: the gateway is told to treat its address as public.
	public := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/clip.mp4", http.StatusFound)
	}))
	publicAddr := netip.MustParseAddrPort(strings.TrimPrefix(public.URL, "http://"))
	g := startGateway(t, Config{S3: s3store.New(s3store.Options{}), exempt: func(ap netip.AddrPort) bool { return ap == publicAddr }})
	port := strings.TrimPrefix(target.URL, "http://127.0.0.1:")

	// A name that resolves to this machine, past the check of literal
	// addresses: only the dialer can refuse it.
	host, _ := os.Hostname()
	if addrs, err := net.LookupHost(host); err != nil || len(addrs) == 0 || addressKind(netip.MustParseAddr(addrs[0])) == "" {
		host = ""
	}

	tests := []struct {
		name     string
		src      string
		atStart  bool // refused by start_encode2 (a validation error), else the task ends in error
		want     string
		skipWhen bool
	}{
		{name: "loopback address", src: target.URL + "/clip.mp4", atStart: true, want: "host 127.0.0.1 is a loopback address"},
		{name: "localhost", src: "http://localhost:" + port + "/clip.mp4", atStart: true, want: "host localhost is a loopback address"},
		{name: "localhost with a dot", src: "http://LocalHost.:" + port + "/clip.mp4", atStart: true, want: "is a loopback address"},
		{name: "IPv6 loopback", src: "http://[::1]:" + port + "/clip.mp4", atStart: true, want: "host ::1 is a loopback address"},
		{name: "mapped IPv4", src: "http://[::ffff:127.0.0.1]:" + port + "/clip.mp4", atStart: true, want: "(127.0.0.1) is a loopback address"},
		{name: "private range", src: "http://10.0.0.1/clip.mp4", atStart: true, want: "host 10.0.0.1 is a private address"},
		{name: "cloud metadata", src: "http://169.254.169.254/latest/meta-data/", atStart: true, want: "is a cloud metadata address"},
		{name: "s3 on loopback", src: "s3://127.0.0.1:" + port + "/bucket/clip.mp4", atStart: true, want: "host 127.0.0.1 is a loopback address"},
		{name: "redirect into the network", src: public.URL + "/video.mp4", want: "the source redirected to " + target.URL + "/clip.mp4, whose host 127.0.0.1 is a loopback address"},
		{name: "name that resolves to loopback", src: "http://" + host + ":" + port + "/clip.mp4", skipWhen: host == "",
			want: "connection would go to 127.0.0.1, a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skipWhen {
				t.Skip("this machine's host name does not resolve to a private address")
			}
			before := target.requests.Load()
			err := g.Check(context.Background(), "task", tt.src)
			if tt.atStart {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "THUMBD_ALLOW_PRIVATE_SOURCES") {
					t.Fatalf("Check = %v, want an error saying %q", err, tt.want)
				}
			} else {
				if err != nil {
					t.Fatalf("Check = %v, want nil: only connecting can tell", err)
				}
				snap := runTask(t, g, engine.Spec{Source: tt.src}, 0)
				if snap.State != engine.StateError || !strings.Contains(snap.Error, tt.want) {
					t.Fatalf("task ended %s with %q, want an error saying %q", snap.State, snap.Error, tt.want)
				}
				t.Log(snap.Error)
			}
			if n := target.requests.Load() - before; n != 0 {
				t.Errorf("the private origin received %d requests", n)
			}
		})
	}
}
