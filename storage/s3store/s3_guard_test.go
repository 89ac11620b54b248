package s3store_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

// loopbackResolver resolves evil.test to 127.0.0.1, as a DNS name an
// attacker controls may.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == "evil.test" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDestinationsOnPrivateNetworksRefused uploads to a real S3 server on
// loopback with private networks off, naming it in each way a query could:
// every upload is refused with an error that names the host and not the
// secret, and nothing reaches the server. Allowed, the same upload lands.
func TestDestinationsOnPrivateNetworksRefused(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "thumbs")
	port := strconv.Itoa(srv.Port)
	refusing := s3store.New(s3store.Options{
		HTTPHosts: []string{"127.0.0.1", "localhost", "::1", "evil.test"},
		Guard:     netguard.Default().WithResolver(loopbackResolver{}),
		Backoff:   time.Second, // a refused connection is not retried
		Logger:    slog.New(slog.DiscardHandler),
	})
	tests := []struct{ name, url, want string }{
		{"loopback address", "s3://127.0.0.1:" + port + "/thumbs/a.png", "the destination's host 127.0.0.1 is a loopback address"},
		{"localhost", "s3://localhost:" + port + "/thumbs/b.png", "the destination's host localhost is a loopback address"},
		{"IPv6 loopback", "s3://[::1]:" + port + "/thumbs/c.png", "is a loopback address"},
		{"credentials in the URL", "s3://" + srv.AccessKey + ":" + srv.Secret + "@127.0.0.1:" + port + "/thumbs/d.png", "the destination's host 127.0.0.1 is a loopback address"},
		{"a name that resolves to loopback", "s3://evil.test:" + port + "/thumbs/e.png", "the destination's host evil.test resolves to 127.0.0.1, a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := refusing.Put(ctx, storage.Destination{URL: tt.url, Key: srv.AccessKey, Secret: srv.Secret}, strings.NewReader("png"), 3, "image/png")
			if err == nil {
				t.Fatal("the upload was made")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "THUMBD_ALLOW_PRIVATE_NETWORKS") {
				t.Fatalf("error %q, want it to say %q and name the setting", msg, tt.want)
			}
			if strings.Contains(msg, "attempts") {
				t.Fatalf("a refused upload was retried: %q", msg)
			}
			if strings.Contains(msg, srv.Secret) || strings.Contains(msg, srv.AccessKey) {
				t.Fatalf("the error shows the credentials: %q", msg)
			}
			t.Log(msg)
		})
	}
	if keys := srv.ListKeys(t, "thumbs", ""); len(keys) != 0 {
		t.Fatalf("the server holds %q after refused uploads", keys)
	}

	// Allowed by network, the same upload lands.
	allowing := s3store.New(s3store.Options{
		HTTPHosts: []string{"127.0.0.1"},
		Guard:     netguard.New(netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}),
		Logger:    slog.New(slog.DiscardHandler),
	})
	if _, err := allowing.Put(t.Context(), storage.Destination{URL: srv.URL("thumbs", "ok.png"), Key: srv.AccessKey, Secret: srv.Secret}, strings.NewReader("png"), 3, "image/png"); err != nil {
		t.Fatalf("upload to an allowed network: %v", err)
	}
	if got := srv.GetObject(t, "thumbs", "ok.png"); string(got) != "png" {
		t.Fatalf("the allowed upload holds %q", got)
	}
}
