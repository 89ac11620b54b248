package s3store

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
)

// TestPutInParts sends bodies larger than one request may carry (the
// limit lowered for the test) in parts, from a body that is an io.ReaderAt
// and from one that only seeks.
func TestPutInParts(t *testing.T) {
	single, part := maxSinglePut, minPart
	maxSinglePut, minPart = 1<<20, 5<<20
	t.Cleanup(func() { maxSinglePut, minPart = single, part })
	srv := s3test.Start(t)
	srv.CreateBucket(t, "big")
	s := New(Options{HTTPHosts: []string{s3test.Host}, Guard: netguard.New(netguard.Policy{AllowPrivate: true}), // versitygw listens on loopback
		Backoff: time.Millisecond, RetryWindow: time.Second, Logger: slog.New(slog.DiscardHandler)})
	body := make([]byte, 12<<20+123)
	rand.Read(body)
	dst := func(key string) storage.Destination {
		return storage.Destination{URL: "s3://" + srv.Endpoint + "/big/" + key, Key: srv.AccessKey, Secret: srv.Secret}
	}
	for _, tc := range []struct {
		name string
		body io.ReadSeeker
	}{
		{"reader at", bytes.NewReader(body)},
		{"seeker only", struct{ io.ReadSeeker }{bytes.NewReader(body)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := strings.ReplaceAll(tc.name, " ", "-")
			if _, err := s.Put(t.Context(), dst(key), tc.body, int64(len(body)), "video/mp4"); err != nil {
				t.Fatal(err)
			}
			if got := srv.GetObject(t, "big", key); !bytes.Equal(got, body) {
				t.Errorf("the object has %d bytes, not the %d sent", len(got), len(body))
			}
			h := srv.HeadObject(t, "big", key)
			if !strings.HasSuffix(strings.Trim(h.ETag, `"`), "-3") || h.ContentType != "video/mp4" {
				t.Errorf("ETag %s, Content-Type %q: want an object of 3 parts, video/mp4", h.ETag, h.ContentType)
			}
		})
	}
	t.Run("no bucket", func(t *testing.T) {
		_, err := s.Put(t.Context(), storage.Destination{URL: "s3://" + srv.Endpoint + "/none/x", Key: srv.AccessKey, Secret: srv.Secret},
			bytes.NewReader(body), int64(len(body)), "")
		if err == nil || strings.Contains(err.Error(), srv.Secret) {
			t.Errorf("Put to a missing bucket: %v", err)
		}
	})
}
