package source

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage/s3store"
)

// evilResolver resolves evil.test to loopback, as a name an attacker
// controls may.
type evilResolver struct{}

func (evilResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == "evil.test" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestPrivateSourcesRefused checks each way a query could make thumbd read
// from its own network, with private networks off. The origins run on
// loopback; the one that stands for the Internet is on 127.0.0.2, which
// the guard allows; the other may not receive a request.
func TestPrivateSourcesRefused(t *testing.T) {
	file := clip(t)
	target := startOrigin(t, serveFile(file)) // what an attacker wants read
	// public stands for a host on the Internet that redirects into the
	// private network: the guard allows its address.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	public := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(target.URL, "127.0.0.1", r.URL.Query().Get("host"), 1)+"/clip.mp4", http.StatusFound)
	})}}
	public.Start()
	defer public.Close()
	guard := netguard.New(netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}).WithResolver(evilResolver{})
	g := startGateway(t, Config{S3: s3store.New(s3store.Options{}), Guard: guard})
	port := strings.TrimPrefix(target.URL, "http://127.0.0.1:")

	tests := []struct {
		name    string
		src     string
		atStart bool // refused by start_encode2 (a validation error), else the task ends in error
		want    string
	}{
		{name: "loopback address", src: target.URL + "/clip.mp4", atStart: true, want: "host 127.0.0.1 is a loopback address"},
		{name: "localhost", src: "http://localhost:" + port + "/clip.mp4", atStart: true, want: "host localhost is a loopback address"},
		{name: "localhost with a dot", src: "http://LocalHost.:" + port + "/clip.mp4", atStart: true, want: "is a loopback address"},
		{name: "IPv6 loopback", src: "http://[::1]:" + port + "/clip.mp4", atStart: true, want: "host ::1 is a loopback address"},
		{name: "mapped IPv4", src: "http://[::ffff:127.0.0.1]:" + port + "/clip.mp4", atStart: true, want: "(127.0.0.1) is a loopback address"},
		{name: "private range", src: "http://10.0.0.1/clip.mp4", atStart: true, want: "host 10.0.0.1 is a private address"},
		{name: "cloud metadata", src: "http://169.254.169.254/latest/meta-data/", atStart: true, want: "is a cloud metadata address"},
		{name: "s3 on loopback", src: "s3://127.0.0.1:" + port + "/bucket/clip.mp4", atStart: true, want: "host 127.0.0.1 is a loopback address"},
		{name: "redirect into the network", src: public.URL + "/video.mp4?host=127.0.0.1", want: "the source redirected to " + target.URL + "/clip.mp4, whose host 127.0.0.1 is a loopback address"},
		{name: "redirect to a name that resolves to loopback", src: public.URL + "/video.mp4?host=evil.test", want: "the source's host evil.test resolves to 127.0.0.1, a loopback address"},
		{name: "name that resolves to loopback", src: "http://evil.test:" + port + "/clip.mp4", want: "the source's host evil.test resolves to 127.0.0.1, a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := target.requests.Load()
			err := g.Check(context.Background(), "task", tt.src)
			if tt.atStart {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "THUMBD_ALLOW_PRIVATE_NETWORKS") {
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
