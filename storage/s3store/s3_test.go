package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage"
)

const (
	fakeKey    = "AKIAFAKEKEY123456789"
	fakeSecret = "fake/secret+KEY=value0123456789"
)

// reply is one scripted answer of fakeS3.
type reply struct {
	status int
	code   string // S3 error code; the body is an S3 error document when set
	msg    string
}

// fakeS3 is an in-process S3 endpoint that answers PUTs from a script (the
// last reply repeats) and records what it got.
type fakeS3 struct {
	t      *testing.T
	srv    *httptest.Server
	script []reply

	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	arrived  chan struct{} // gets a value per request, if not full
}

func newFake(t *testing.T, tls bool, script ...reply) *fakeS3 {
	f := &fakeS3{t: t, script: script, arrived: make(chan struct{}, 100)}
	h := http.HandlerFunc(f.serve)
	if tls {
		f.srv = httptest.NewTLSServer(h)
	} else {
		f.srv = httptest.NewServer(h)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, string(body))
	f.mu.Unlock()
	select {
	case f.arrived <- struct{}{}:
	default:
	}
	rep := reply{status: 200}
	if len(f.script) > 0 {
		rep = f.script[min(n, len(f.script)-1)]
	}
	if rep.code != "" {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(rep.status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>r1</RequestId></Error>`, rep.code, rep.msg)
		return
	}
	w.Header().Set("ETag", `"abc"`)
	w.WriteHeader(rep.status)
}

func (f *fakeS3) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// url returns s3://127.0.0.1:PORT/bucket/key for the fake.
func (f *fakeS3) url(bucketKey string) string {
	return "s3://" + strings.TrimPrefix(strings.TrimPrefix(f.srv.URL, "http://"), "https://") + "/" + bucketKey
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPutRetries(t *testing.T) {
	tests := []struct {
		name         string
		retries      int
		script       []reply
		wantAttempts int
		wantErr      []string // substrings of the error; nil for success
	}{
		{name: "500 twice then ok", script: []reply{{status: 500, code: "InternalError", msg: "oops"}, {status: 500}, {status: 200}},
			wantAttempts: 3},
		{name: "first try ok", script: []reply{{status: 200}}, wantAttempts: 1},
		{name: "502 503 504 429 then ok", script: []reply{{status: 502}, {status: 503, code: "SlowDown", msg: "slow"}, {status: 504}, {status: 429}, {status: 200}},
			wantAttempts: 5},
		{name: "503 forever", retries: 2, script: []reply{{status: 503, code: "SlowDown", msg: "Please reduce your request rate."}},
			wantAttempts: 3, wantErr: []string{"after 3 attempts", "SlowDown (HTTP 503)", "Please reduce your request rate."}},
		{name: "403 AccessDenied not retried", script: []reply{{status: 403, code: "AccessDenied", msg: "Access Denied"}},
			wantAttempts: 1, wantErr: []string{"after 1 attempt:", "AccessDenied (HTTP 403): Access Denied"}},
		{name: "404 NoSuchBucket not retried", script: []reply{{status: 404, code: "NoSuchBucket", msg: "The specified bucket does not exist"}},
			wantAttempts: 1, wantErr: []string{"NoSuchBucket (HTTP 404)", "The specified bucket does not exist"}},
		{name: "400 InvalidArgument not retried", script: []reply{{status: 400, code: "InvalidArgument", msg: "bad acl"}},
			wantAttempts: 1, wantErr: []string{"InvalidArgument"}},
		{name: "400 RequestTimeout retried", script: []reply{{status: 400, code: "RequestTimeout", msg: "slow client"}, {status: 200}},
			wantAttempts: 2},
		{name: "bare 500 forever", retries: 1, script: []reply{{status: 500}},
			wantAttempts: 2, wantErr: []string{"after 2 attempts", "HTTP 500"}},
		{name: "no retries", retries: -1, script: []reply{{status: 500, code: "InternalError", msg: "oops"}},
			wantAttempts: 1, wantErr: []string{"InternalError (HTTP 500)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, false, tt.script...)
			s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Retries: tt.retries, Backoff: time.Millisecond, Logger: quietLogger()})
			content := "PNG-DATA-" + tt.name
			dst := storage.Destination{
				URL: f.url("bucket/task/thumb_0001.png"), Key: fakeKey, Secret: fakeSecret,
				Permissions: "public-read", StorageClass: "REDUCED_REDUNDANCY", CacheControl: "max-age=60",
			}
			loc, err := s.Put(t.Context(), dst, strings.NewReader(content), int64(len(content)), "image/png")
			if got := f.count(); got != tt.wantAttempts {
				t.Errorf("server saw %d requests, want %d", got, tt.wantAttempts)
			}
			// Every attempt sent the whole file and the headers.
			for i, r := range f.requests {
				if f.bodies[i] != content {
					t.Errorf("attempt %d sent body %q, want %q", i+1, f.bodies[i], content)
				}
				checkHeaders(t, r, map[string]string{
					"Content-Type":        "image/png",
					"Content-Length":      fmt.Sprint(len(content)),
					"X-Amz-Acl":           "public-read",
					"X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
					"Cache-Control":       "max-age=60",
				})
				if r.Method != http.MethodPut || r.URL.Path != "/bucket/task/thumb_0001.png" {
					t.Errorf("attempt %d: %s %s, want a path-style PUT", i+1, r.Method, r.URL.Path)
				}
				if a := r.Header.Get("Authorization"); !strings.Contains(a, "Credential="+fakeKey+"/") || !strings.Contains(a, "/us-east-1/s3/") {
					t.Errorf("attempt %d: Authorization %q lacks the key or region", i+1, a)
				}
				for h := range r.Header {
					if strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") || strings.HasPrefix(strings.ToLower(h), "x-amz-sdk-checksum") {
						t.Errorf("attempt %d sent checksum header %s", i+1, h)
					}
				}
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				want := storage.Location{URL: dst.URL, Type: "custom_s3", Scheme: "http", Host: "127.0.0.1", Port: f.srv.Listener.Addr().(*net.TCPAddr).Port, Bucket: "bucket", Key: "task/thumb_0001.png"}
				if loc != want {
					t.Errorf("storage.Location = %+v, want %+v", loc, want)
				}
				return
			}
			if err == nil {
				t.Fatal("Put succeeded, want an error")
			}
			checkError(t, err, dst.URL, tt.wantErr...)
			t.Logf("error: %v", err)
			var e *Error
			if !errors.As(err, &e) || e.Attempts != tt.wantAttempts {
				t.Errorf("error %#v: want *Error with Attempts %d", err, tt.wantAttempts)
			}
		})
	}
}

func checkHeaders(t *testing.T, r *http.Request, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got := r.Header.Get(k)
		if k == "Content-Length" {
			got = fmt.Sprint(r.ContentLength)
		}
		if got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// checkError checks that err names url and holds want, but neither the
// secret nor the whole key id.
func checkError(t *testing.T, err error, url string, want ...string) {
	t.Helper()
	msg := err.Error()
	for _, w := range append([]string{url}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, bad := range []string{fakeSecret, fakeKey, "fake/secret", "AKIAFAKEKEY1"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q leaks %q", msg, bad)
		}
	}
}

func TestPutRedactsServerEcho(t *testing.T) {
	// A server that repeats the credentials in its message.
	f := newFake(t, false, reply{status: 403, code: "SignatureDoesNotMatch",
		msg: "key " + fakeKey + " with secret " + fakeSecret + " is wrong"})
	var logs strings.Builder
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	url := f.url("b/k.png")
	_, err := s.Put(t.Context(), storage.Destination{URL: url, Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, "image/png")
	if err == nil {
		t.Fatal("Put succeeded")
	}
	checkError(t, err, url, "SignatureDoesNotMatch", "key AKIA… with secret [secret] is wrong")
	if strings.Contains(logs.String(), fakeSecret) || strings.Contains(logs.String(), fakeKey) {
		t.Errorf("logs leak credentials: %s", logs.String())
	}
}

func TestPutLogsRetriesWithoutSecrets(t *testing.T) {
	f := newFake(t, false, reply{status: 500, code: "InternalError", msg: fakeSecret}, reply{status: 200})
	var logs strings.Builder
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if _, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/k.png"), Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "retrying") || !strings.Contains(out, "AKIA…") {
		t.Errorf("no retry log line with the key hint: %s", out)
	}
	if strings.Contains(out, fakeSecret) || strings.Contains(out, fakeKey) {
		t.Errorf("logs leak credentials: %s", out)
	}
}

func TestPutCancelStopsRetries(t *testing.T) {
	f := newFake(t, false, reply{status: 500, code: "InternalError", msg: "down"})
	ctx, cancel := context.WithCancel(t.Context())
	// Cancel when Put logs that it will retry, in a minute.
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Retries: 10, Backoff: time.Minute, Logger: slog.New(onWarn(cancel))})
	start := time.Now()
	url := f.url("b/k.png")
	_, err := s.Put(ctx, storage.Destination{URL: url, Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Put took %v after cancel; it should stop waiting at once", d)
	}
	if n := f.count(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	checkError(t, err, url, "InternalError", "gave up retrying: context canceled")

	t.Logf("error: %v", err)

	// Already canceled: no retries either.
	_, err = s.Put(ctx, storage.Destination{URL: url, Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, "")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := f.count(); n > 2 {
		t.Errorf("server saw %d requests after a canceled Put, want at most 2", n)
	}
}

func TestPutRetriesNetworkErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Retries: 2, Backoff: time.Millisecond, Logger: quietLogger()})
	url := "s3://" + addr + "/b/k.png"
	_, err = s.Put(t.Context(), storage.Destination{URL: url, Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, "")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if e.Attempts != 3 {
		t.Errorf("Attempts = %d, want 3", e.Attempts)
	}
	checkError(t, err, url, "after 3 attempts", "connection refused")
	t.Logf("error: %v", err)
}

func TestPutHTTPSAndClientCache(t *testing.T) {
	f := newFake(t, true)
	s := New(Options{Guard: allowAll, HTTPClient: f.srv.Client(), Logger: quietLogger()}) // 127.0.0.1 not in HTTPHosts: https
	url := f.url("b/a.png")
	loc, err := s.Put(t.Context(), storage.Destination{URL: url, Key: fakeKey, Secret: fakeSecret}, strings.NewReader("a"), 1, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != "https" || f.requests[0].TLS == nil {
		t.Errorf("Scheme = %q, TLS = %v; want https", loc.Scheme, f.requests[0].TLS)
	}
	if _, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/b.png"), Key: fakeKey, Secret: fakeSecret}, strings.NewReader("b"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(s.clients); n != 1 {
		t.Errorf("%d cached clients after two puts with the same credentials, want 1", n)
	}
	if _, err := s.Put(t.Context(), storage.Destination{URL: url, Key: fakeKey, Secret: "other-secret-value"}, strings.NewReader("c"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(s.clients); n != 2 {
		t.Errorf("%d cached clients after a put with another secret, want 2", n)
	}
	for k := range s.clients {
		if strings.Contains(k, fakeSecret) {
			t.Errorf("cache key holds the secret")
		}
	}
}

func TestPutCredentials(t *testing.T) {
	f := newFake(t, false)
	hostport := strings.TrimPrefix(f.srv.URL, "http://")
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Logger: quietLogger()})

	// Credentials in the URL's userinfo, percent-encoded.
	raw := "s3://URLKEY0123456789:" + url.PathEscape("url/secret+1") + "@" + hostport + "/b/k.png"
	loc, err := s.Put(t.Context(), storage.Destination{URL: raw}, strings.NewReader("x"), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "s3://" + hostport + "/b/k.png"; loc.URL != want {
		t.Errorf("storage.Location.URL = %q, want %q (no userinfo)", loc.URL, want)
	}
	if a := f.requests[0].Header.Get("Authorization"); !strings.Contains(a, "Credential=URLKEY0123456789/") {
		t.Errorf("Authorization %q does not use the URL's key", a)
	}

	// The default chain, from the environment.
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVKEY0123456789")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	if _, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/k.png")}, strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if a := f.requests[1].Header.Get("Authorization"); !strings.Contains(a, "Credential=ENVKEY0123456789/") {
		t.Errorf("Authorization %q does not use the environment's key", a)
	}

	// Half the credentials: refused before any request.
	for _, dst := range []storage.Destination{
		{URL: f.url("b/k.png"), Key: fakeKey},
		{URL: f.url("b/k.png"), Secret: fakeSecret},
	} {
		_, err := s.Put(t.Context(), dst, strings.NewReader("x"), 1, "")
		if err == nil {
			t.Errorf("Put with key %q secret %q succeeded", dst.Key, dst.Secret)
			continue
		}
		checkError(t, err, dst.URL, "without")
	}
	// No object key, bad URL.
	if _, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/"), Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, ""); err == nil || !strings.Contains(err.Error(), "no object key") {
		t.Errorf("Put to a folder: err = %v", err)
	}
	if _, err := s.Put(t.Context(), storage.Destination{URL: "ftp://" + fakeKey + ":" + fakeSecret + "@h/b/k", Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, ""); err == nil {
		t.Error("Put to ftp:// succeeded")
	} else {
		checkError(t, err, "ftp://h/b/k", "not s3")
	}
	if n := f.count(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestPutNoDefaultCredentials(t *testing.T) {
	f := newFake(t, false)
	isolateAWSEnv(t)
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, Backoff: time.Millisecond, Logger: quietLogger()})
	_, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/k.png")}, strings.NewReader("x"), 1, "")
	if err == nil {
		t.Fatal("Put without any credentials succeeded")
	}
	checkError(t, err, f.url("b/k.png"), "default AWS credential chain")
	if n := f.count(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

// isolateAWSEnv hides the machine's AWS configuration from the default chain.
func isolateAWSEnv(t *testing.T) {
	dir := t.TempDir()
	for _, kv := range [][2]string{
		{"AWS_CONFIG_FILE", filepath.Join(dir, "config")},
		{"AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials")},
		{"AWS_EC2_METADATA_DISABLED", "true"},
		{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}, {"AWS_SESSION_TOKEN", ""},
		{"AWS_PROFILE", ""}, {"AWS_WEB_IDENTITY_TOKEN_FILE", ""}, {"AWS_ROLE_ARN", ""},
		{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ""}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI", ""},
	} {
		t.Setenv(kv[0], kv[1])
	}
}

// TestRetryWindow keeps retrying a server that always fails until the
// window is over, and then stops.
func TestRetryWindow(t *testing.T) {
	f := newFake(t, false, reply{status: 503, code: "SlowDown", msg: "busy"})
	s := New(Options{Guard: allowAll, HTTPHosts: []string{"127.0.0.1"}, RetryWindow: 400 * time.Millisecond, Backoff: 20 * time.Millisecond, Logger: quietLogger()})
	began := time.Now()
	_, err := s.Put(t.Context(), storage.Destination{URL: f.url("b/k.png"), Key: fakeKey, Secret: fakeSecret}, strings.NewReader("x"), 1, "")
	took := time.Since(began)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	t.Logf("%v, %d requests: %v", took, f.count(), err)
	checkError(t, err, f.url("b/k.png"), "SlowDown (HTTP 503)", "gave up retrying: still failing 400ms after the first failure")
	if took < 400*time.Millisecond || took > 2*time.Second {
		t.Errorf("Put gave up after %v, want about the 400ms window", took)
	}
	if e.Attempts != f.count() || e.Attempts < 4 {
		t.Errorf("Attempts = %d, server saw %d; want the same, and several", e.Attempts, f.count())
	}
}

// onWarn is a slog.Handler that calls fn for each record at Warn or above.
type onWarn func()

func (onWarn) Enabled(context.Context, slog.Level) bool { return true }
func (h onWarn) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h()
	}
	return nil
}
func (h onWarn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onWarn) WithGroup(string) slog.Handler      { return h }

// allowAll lets the tests reach their servers on loopback.
var allowAll = netguard.New(netguard.Policy{AllowPrivate: true})
