package callback_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
)

// evilResolver resolves evil.test to loopback, as a DNS name an attacker
// controls may, and public.test to the receiver that stands for a public
// host.
type evilResolver struct{}

func (evilResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch host {
	case "evil.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "public.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestCallbacksToPrivateNetworksRefused sends callbacks, with the
// default network policy, to a receiver on loopback named in each way a
// query could: none may reach it, none is retried, and each task gets a
// warning that says why without the URL's credentials or query. A
// receiver on 127.0.0.2, which the guard allows as if it were a public
// host, redirects into loopback: the redirect is not followed. A receiver
// that answers an error gets a warning with its status, never its body.
func TestCallbacksToPrivateNetworksRefused(t *testing.T) {
	var internal atomic.Int64
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internal.Add(1)
		w.WriteHeader(http.StatusPreconditionFailed)
		w.Write([]byte(`<?xml version="1.0"?><secret>internal service</secret>`))
	}))
	defer inside.Close()
	port := strconv.Itoa(inside.Listener.Addr().(*net.TCPAddr).Port)

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	public := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "http://127.0.0.1:"+port+"/admin", http.StatusTemporaryRedirect)
		case "/redirect-name":
			http.Redirect(w, r, "http://evil.test:"+port+"/admin", http.StatusTemporaryRedirect)
		default:
			w.WriteHeader(http.StatusPreconditionFailed)
			w.Write([]byte(`<?xml version="1.0"?><Error>the start of a reply</Error>`))
		}
	})}}
	public.Start()
	defer public.Close()
	publicURL := "http://public.test:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	guard := netguard.New(netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}).WithResolver(evilResolver{})
	var w warnings
	n := callback.New(callback.Config{Guard: guard, Warnings: &w, RetryFor: 2 * time.Second, Backoff: 50 * time.Millisecond})
	defer n.Close(context.Background())

	tests := []struct {
		name, url, shown, want string
	}{
		{"loopback", "http://127.0.0.1:" + port + "/thumbs?x=1", "http://127.0.0.1:" + port + "/thumbs?…", "the callback's host 127.0.0.1 is a loopback address"},
		{"localhost", "http://localhost:" + port + "/thumbs", "http://localhost:" + port + "/thumbs", "the callback's host localhost is a loopback address"},
		{"IPv6 loopback", "http://[::1]:" + port + "/thumbs", "http://[::1]:" + port + "/thumbs", "the callback's host ::1 is a loopback address"},
		{"unspecified", "http://0.0.0.0:" + port + "/thumbs", "http://0.0.0.0:" + port + "/thumbs", "the callback's host 0.0.0.0 is an unspecified address"},
		{"name resolving to loopback", "http://evil.test:" + port + "/thumbs", "http://evil.test:" + port + "/thumbs", "the callback's host evil.test resolves to 127.0.0.1, a loopback address"},
		{"redirect to loopback", publicURL + "/redirect", publicURL + "/redirect", "the callback redirected to http://127.0.0.1:" + port + "/admin, whose host 127.0.0.1 is a loopback address"},
		{"redirect to a name resolving to loopback", publicURL + "/redirect-name", publicURL + "/redirect-name", "the callback's host evil.test resolves to 127.0.0.1, a loopback address"},
		{"credentials", "http://u:PASS@127.0.0.1:" + port + "/hook?auth=TOKEN", "http://127.0.0.1:" + port + "/hook?…", "the callback's host 127.0.0.1 is a loopback address"},
		{"an allowed receiver that fails", publicURL + "/hook?token=TOKEN", publicURL + "/hook?…", "412: Precondition Failed"},
	}
	for i, tt := range tests {
		tok := strings.Repeat(strconv.Itoa(i%10), 32)
		n.Notify(context.Background(), event(tok, engine.EventSaved, tt.url))
	}
	ds := settle(t, n, len(tests))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ds[i]
			if d.Delivered {
				t.Fatal("delivered")
			}
			if d.URL != tt.shown {
				t.Errorf("the inspector shows %q, want %q", d.URL, tt.shown)
			}
			refused := !strings.HasPrefix(tt.want, "412")
			if refused && len(d.Attempts) != 1 {
				t.Errorf("%d attempts, want 1: a refused address is not tried again", len(d.Attempts))
			}
			ws := w.of(strings.Repeat(strconv.Itoa(i%10), 32))
			if len(ws) != 1 {
				t.Fatalf("warnings %+v, want one", ws)
			}
			details := ws[0].Details
			sep := ": "
			if !refused {
				sep = " "
			}
			if want := "Error sending callback to " + tt.shown + sep + tt.want; !strings.HasPrefix(details, want) {
				t.Errorf("warning %q, want it to start %q", details, want)
			}
			if refused && !strings.Contains(details, "THUMBD_ALLOW_PRIVATE_NETWORKS") {
				t.Errorf("warning %q does not name the setting", details)
			}
			for _, leak := range []string{"PASS", "TOKEN", "x=1", "<?xml", "reply", "internal service"} {
				if strings.Contains(details, leak) || strings.Contains(d.Attempts[0].Error, leak) {
					t.Errorf("warning %q or attempt %q shows %q", details, d.Attempts[0].Error, leak)
				}
			}
		})
	}
	if got := internal.Load(); got != 0 {
		t.Fatalf("the receiver on loopback got %d requests", got)
	}
}
