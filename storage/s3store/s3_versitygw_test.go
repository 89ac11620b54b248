package s3store_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

func newS3() *s3store.Store {
	return s3store.New(s3store.Options{
		HTTPHosts: []string{s3test.Host},
		Guard:     netguard.New(netguard.Policy{AllowPrivate: true}), // versitygw listens on loopback
		Backoff:   time.Millisecond,
		Logger:    slog.New(slog.DiscardHandler),
	})
}

func TestS3AgainstVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "thumbs")
	s := newS3()

	puts := []struct {
		key, body, ctype, acl, cache, class string
	}{
		{key: "tok/thumb_0001.png", body: "\x89PNG one", ctype: "image/png", acl: "public-read", cache: "max-age=3600"},
		{key: "tok/thumb_0002.png", body: "\x89PNG two, longer", ctype: "image/png", acl: "public-read"},
		{key: "tok/sprite.jpg", body: strings.Repeat("J", 300_000), ctype: "image/jpeg", acl: "private", class: "STANDARD"},
		{key: "tok/thumbs.vtt", body: "WEBVTT\n", ctype: "text/vtt"},
		{key: "other/x@2x.png", body: "x2", ctype: "image/png", acl: "public-read"},
	}
	for _, p := range puts {
		dst := storage.Destination{
			URL: srv.URL("thumbs", p.key), Key: srv.AccessKey, Secret: srv.Secret,
			Permissions: p.acl, CacheControl: p.cache, StorageClass: p.class,
		}
		loc, err := s.Put(t.Context(), dst, strings.NewReader(p.body), int64(len(p.body)), p.ctype)
		if err != nil {
			t.Fatalf("Put %s (acl %q): %v", p.key, p.acl, err)
		}
		want := storage.Location{URL: dst.URL, Type: "custom_s3", Scheme: "http", Host: s3test.Host, Port: srv.Port, Bucket: "thumbs", Key: p.key}
		if loc != want {
			t.Errorf("storage.Location = %+v, want %+v", loc, want)
		}
	}
	for _, p := range puts {
		if got := srv.GetObject(t, "thumbs", p.key); string(got) != p.body {
			t.Errorf("%s holds %d bytes, want %d", p.key, len(got), len(p.body))
		}
		h := srv.HeadObject(t, "thumbs", p.key)
		if h.ContentType != p.ctype || h.CacheControl != p.cache {
			t.Errorf("%s: Content-Type %q Cache-Control %q, want %q %q", p.key, h.ContentType, h.CacheControl, p.ctype, p.cache)
		}
	}
	if got := srv.ListKeys(t, "thumbs", "tok/"); len(got) != 4 {
		t.Errorf("ListKeys(tok/) = %q, want 4 keys", got)
	}

	// Read back through storage: Get, Stat, Presign.
	u := srv.URL("thumbs", "tok/thumb_0002.png")
	rc, size, err := s.Get(t.Context(), u, srv.AccessKey, srv.Secret)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != puts[1].body || size != int64(len(puts[1].body)) {
		t.Errorf("Get = %q, %d; want %q, %d", got, size, puts[1].body, len(puts[1].body))
	}
	info, err := s.Stat(t.Context(), u, srv.AccessKey, srv.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(puts[1].body)) || info.ContentType != "image/png" || info.ETag == "" {
		t.Errorf("Stat = %+v", info)
	}
	signed, err := s.Presign(t.Context(), u, srv.AccessKey, srv.Secret, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(signed, url.QueryEscape(srv.Secret)) || strings.Contains(signed, srv.Secret) || !strings.HasPrefix(signed, "http://"+srv.Endpoint+"/thumbs/tok/thumb_0002.png?") {
		t.Errorf("presigned URL %q", signed)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != puts[1].body {
		t.Errorf("GET presigned: %d %q", resp.StatusCode, body)
	}
	if _, _, err := s.Get(t.Context(), srv.URL("thumbs", "tok/missing.png"), srv.AccessKey, srv.Secret); err == nil {
		t.Error("Get of a missing object succeeded")
	} else {
		checkNoCreds(t, err, srv)
	}

	// Credentials in the URL, the secret's "/" percent-encoded or not.
	for _, secret := range []string{url.PathEscape(srv.Secret), srv.Secret} {
		raw := "s3://" + srv.AccessKey + ":" + secret + "@" + srv.Endpoint + "/thumbs/userinfo/a.png"
		loc, err := s.Put(t.Context(), storage.Destination{URL: raw}, bytes.NewReader([]byte("ui")), 2, "image/png")
		if err != nil {
			t.Fatalf("Put with userinfo: %v", err)
		}
		if loc.URL != srv.URL("thumbs", "userinfo/a.png") {
			t.Errorf("storage.Location.URL = %q, want it without userinfo", loc.URL)
		}
	}
	if got := srv.GetObject(t, "thumbs", "userinfo/a.png"); string(got) != "ui" {
		t.Errorf("userinfo/a.png = %q", got)
	}

	// The default credential chain, from the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if _, err := s.Put(t.Context(), storage.Destination{URL: srv.URL("thumbs", "env/a.png")}, strings.NewReader("env"), 3, "image/png"); err != nil {
		t.Fatalf("Put with the default chain: %v", err)
	}
	if got := srv.GetObject(t, "thumbs", "env/a.png"); string(got) != "env" {
		t.Errorf("env/a.png = %q", got)
	}
}

func TestS3ErrorsAgainstVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "thumbs")
	s := newS3()
	tests := []struct {
		name         string
		dst          storage.Destination
		wantCode     string
		wantStatus   int
		wantAttempts int
	}{
		{"missing bucket", storage.Destination{URL: srv.URL("nosuchbucket", "tok/a.png"), Key: srv.AccessKey, Secret: srv.Secret, Permissions: "public-read"},
			"NoSuchBucket", 404, 1},
		{"wrong secret", storage.Destination{URL: srv.URL("thumbs", "tok/a.png"), Key: srv.AccessKey, Secret: "wrong-secret-wrong-secret"},
			"SignatureDoesNotMatch", 403, 1},
		{"unknown key", storage.Destination{URL: srv.URL("thumbs", "tok/a.png"), Key: "AKIANOSUCHKEY0000000", Secret: srv.Secret},
			// AWS says 403 InvalidAccessKeyId; versitygw v1.8.0 says this.
			"XAdminUserNotFound", 404, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(t.Context(), tt.dst, strings.NewReader("data"), 4, "image/png")
			if err == nil {
				t.Fatal("Put succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, want := range []string{tt.dst.URL, tt.wantCode} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			checkNoCreds(t, err, srv)
			if strings.Contains(msg, tt.dst.Key) || strings.Contains(msg, tt.dst.Secret) {
				t.Errorf("error %q leaks the destination's credentials", msg)
			}
			var e *s3store.Error
			if !errors.As(err, &e) {
				t.Fatalf("error is %T, want *s3store.Error", err)
			}
			if e.Code != tt.wantCode || e.StatusCode != tt.wantStatus || e.Attempts != tt.wantAttempts || e.Op != "put" {
				t.Errorf("Error = %+v, want code %s status %d attempts %d", e, tt.wantCode, tt.wantStatus, tt.wantAttempts)
			}
		})
	}
	if keys := srv.ListKeys(t, "thumbs", ""); len(keys) != 0 {
		t.Errorf("failed puts left %q", keys)
	}
}

func checkNoCreds(t *testing.T, err error, srv *s3test.Server) {
	t.Helper()
	if msg := err.Error(); strings.Contains(msg, srv.Secret) || strings.Contains(msg, srv.AccessKey) {
		t.Errorf("error %q leaks credentials", msg)
	}
}

// TestPutOutlivesAnOutageOfVersitygw stops the S3 server in the middle of
// an upload and brings it back 6 s later: within the retry window the save
// completes; with a window shorter than the outage it fails, saying so.
func TestPutOutlivesAnOutageOfVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "thumbs")
	const outage = 6 * time.Second
	tests := []struct {
		name   string
		window time.Duration
		ok     bool
	}{
		{"window longer than the outage", 30 * time.Second, true},
		{"window shorter than the outage", 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s3store.New(s3store.Options{Guard: netguard.New(netguard.Policy{AllowPrivate: true}), HTTPHosts: []string{s3test.Host}, RetryWindow: tt.window, Backoff: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			key := "outage/" + strings.ReplaceAll(tt.name, " ", "-") + ".png"
			data := bytes.Repeat([]byte("P"), 4<<20)
			var back *time.Timer
			var stoppedAt time.Time
			body := &midway{r: bytes.NewReader(data), at: int64(len(data) / 2), fn: func() { // while sending
				srv.Stop()
				stoppedAt = time.Now()
				back = time.AfterFunc(outage, func() { srv.Restart(t) })
			}}
			_, err := s.Put(t.Context(), storage.Destination{URL: srv.URL("thumbs", key), Key: srv.AccessKey, Secret: srv.Secret}, body, int64(len(data)), "image/png")
			if back == nil {
				t.Fatalf("the server was never stopped: %v", err)
			}
			defer back.Stop()
			took := time.Since(stoppedAt)
			t.Logf("%v after the server stopped: %v", took.Round(time.Millisecond), err)
			if !tt.ok {
				var e *s3store.Error
				if !errors.As(err, &e) || !strings.Contains(err.Error(), "gave up retrying: still failing 2s after the first failure") || e.Attempts < 3 {
					t.Fatalf("err = %v, want the window's end after several attempts", err)
				}
				if took > outage {
					t.Errorf("gave up after %v, past the 2s window", took)
				}
				for time.Since(stoppedAt) < outage+3*time.Second { // let the server come back
					time.Sleep(100 * time.Millisecond)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put across a %v outage: %v", outage, err)
			}
			if took < outage {
				t.Errorf("Put ended %v after the server stopped; was it down?", took)
			}
			if got := srv.GetObject(t, "thumbs", key); !bytes.Equal(got, data) {
				t.Errorf("%s holds %d bytes, want %d", key, len(got), len(data))
			}
		})
	}
}

// midway is a body that calls fn the second time it is read past at: the
// SDK reads it once to sign it, then again to send it.
type midway struct {
	r      *bytes.Reader // not embedded: its WriteTo would bypass Read
	at     int64
	fn     func()
	passes int
	past   bool
}

func (m *midway) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	pos := m.r.Size() - int64(m.r.Len())
	if pos > m.at && !m.past {
		m.passes++
		if m.passes == 2 {
			m.fn()
		}
	}
	m.past = pos > m.at
	return n, err
}

func (m *midway) Seek(off int64, whence int) (int64, error) { return m.r.Seek(off, whence) }
