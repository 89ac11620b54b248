package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

// Every API method answers HTTP 200, application/json and an integer
// "error", whether it succeeded or not.
func TestEveryReplyIsJSONWithIntegerError(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.snaps[fakeTask] = engine.Snapshot{State: engine.StateQueued}
	goodQuery := `{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail"}]}}`
	tests := []struct {
		name string
		path string
		form url.Values
		want int
	}{
		{"access_token ok", "/v1/access_token", url.Values{"api_key": {"5a2a846a26ace1"}}, 0},
		{"access_token no key", "/v1/access_token", nil, 2},
		{"create_task ok", "/v1/create_task", url.Values{"token": {fakeAccess}}, 0},
		{"create_task no token", "/v1/create_task", nil, 4},
		{"create_token ok", "/v1/create_token", url.Values{"token": {fakeAccess}}, 0},
		{"create_token no token", "/v1/create_token", nil, 4},
		{"start_encode2 ok", "/v1/start_encode2", url.Values{"task_token": {fakeTask}, "query": {goodQuery}}, 0},
		{"start_encode2 no task_token", "/v1/start_encode2", url.Values{"query": {goodQuery}}, 4},
		{"start_encode2 no query", "/v1/start_encode2", url.Values{"task_token": {fakeTask}}, 19},
		{"start_encode2 bad json", "/v1/start_encode2", url.Values{"task_token": {fakeTask}, "query": {"{"}}, 14},
		{"start_encode legacy", "/v1/start_encode", url.Values{"task_token": {fakeTask}, "profiles": {"abc"}}, 11},
		{"status ok", "/v1/status", url.Values{"task_tokens[]": {fakeTask}}, 0},
		{"status no tokens", "/v1/status", nil, 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postForm(t, ts.URL+tc.path, tc.form)
			if got := r.apiCode(t); got != tc.want {
				t.Errorf("error = %d, want %d; body %s", got, tc.want, r.raw)
			}
			if tc.want != 0 {
				if msg, _ := r.body["message"].(string); msg == "" {
					t.Errorf("error reply without a message: %s", r.raw)
				}
			}
		})
	}
}

// Unknown routes may be 404, but still answer JSON with an integer error.
func TestUnknownRouteIsJSON(t *testing.T) {
	ts, _ := newTestServer(t, Config{})
	for _, p := range []string{"/v1/nope", "/", "/v2/status", "/v1/upload_file"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			t.Run(m+p, func(t *testing.T) {
				r := do(t, newRequest(t, m, ts.URL+p, nil))
				if r.status != http.StatusNotFound && r.status != http.StatusOK {
					t.Errorf("status = %d, want 404 or 200", r.status)
				}
				if !r.isJSON() {
					t.Errorf("Content-Type = %q, want JSON", r.header.Get("Content-Type"))
				}
				if code := r.intField(t, "error"); code == 0 {
					t.Errorf("error = 0 for an unknown route")
				}
			})
		}
	}
}

// An API route asked with a method it does not serve should still answer
// JSON, like every other API reply.
func TestWrongMethodIsJSON(t *testing.T) {
	ts, _ := newTestServer(t, Config{})
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(m, func(t *testing.T) {
			r := do(t, newRequest(t, m, ts.URL+"/v1/status", strings.NewReader("task_tokens="+fakeTask)))
			if !r.isJSON() || r.body == nil {
				t.Errorf("%s /v1/status: status %d, Content-Type %q, body %q; want a JSON error object",
					m, r.status, r.header.Get("Content-Type"), r.raw)
			}
		})
	}
}

func TestAccessToken(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.expires = time.Date(2026, 8, 2, 13, 42, 23, 0, time.FixedZone("X", 3600))
	r := postForm(t, ts.URL+"/v1/access_token", url.Values{"api_key": {"  5a2a846a26ace1 "}})
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("error = %d: %s", code, r.raw)
	}
	if tok := r.str("token"); !hex32.MatchString(tok) {
		t.Errorf("token = %q, want 32 hex digits", tok)
	}
	// Expiry is rendered in UTC, ISO, without a zone.
	if exp := r.str("expire"); exp != "2026-08-02T12:42:23" {
		t.Errorf("expire = %q, want 2026-08-02T12:42:23", exp)
	}
	if len(fe.keys) != 1 || fe.keys[0] != "5a2a846a26ace1" {
		t.Errorf("engine got keys %q, want the trimmed key", fe.keys)
	}
}

func TestAccessTokenRealEngine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 500e6, time.UTC)
	eng := engine.New(engine.Config{
		APIKeys: []string{"goodkey123456"},
		WorkDir: t.TempDir(),
		Now:     func() time.Time { return now },
	})
	ts, _ := newTestServer(t, Config{Engine: eng})
	expireRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$`)

	r := postForm(t, ts.URL+"/v1/access_token", url.Values{"api_key": {"goodkey123456"}})
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("good key: error = %d: %s", code, r.raw)
	}
	if tok := r.str("token"); !hex32.MatchString(tok) {
		t.Errorf("token = %q, want 32 hex digits", tok)
	}
	exp := r.str("expire")
	if !expireRE.MatchString(exp) {
		t.Errorf("expire = %q, want YYYY-MM-DDTHH:MM:SS", exp)
	}
	if exp != "2026-01-03T03:04:05" {
		t.Errorf("expire = %q, want 24 h after now: 2026-01-03T03:04:05", exp)
	}

	for _, tc := range []struct {
		name string
		form url.Values
		code int
	}{
		{"missing", nil, 2},
		{"empty", url.Values{"api_key": {""}}, 2},
		{"blank", url.Values{"api_key": {"   "}}, 2},
		{"short", url.Values{"api_key": {"short"}}, 2},
		{"inner space", url.Values{"api_key": {"goodkey 123456"}}, 2},
		{"unknown", url.Values{"api_key": {"otherkey123456"}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			postForm(t, ts.URL+"/v1/access_token", tc.form).wantError(t, tc.code)
		})
	}
}

func TestCreateTask(t *testing.T) {
	for _, p := range []string{"/v1/create_task", "/v1/create_token"} {
		t.Run(p, func(t *testing.T) {
			ts, fe := newTestServer(t, Config{})
			r := postForm(t, ts.URL+p, url.Values{"token": {fakeAccess}})
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
			if got := r.str("task_token"); got != fakeTask {
				t.Errorf("task_token = %q, want %q", got, fakeTask)
			}
			if got, want := r.str("upload_url"), ts.URL+"/v1/upload_file"; got != want {
				t.Errorf("upload_url = %q, want %q", got, want)
			}
			if len(fe.accesses) != 1 || fe.accesses[0] != fakeAccess {
				t.Errorf("engine got access tokens %q", fe.accesses)
			}
		})
	}
}

func TestCreateTaskRealEngine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	eng := engine.New(engine.Config{WorkDir: t.TempDir(), Now: func() time.Time { return now }})
	ts, _ := newTestServer(t, Config{Engine: eng})
	access, _, err := eng.NewSession(context.Background(), "5a2a846a26ace1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/create_task", "/v1/create_token"} {
		for _, tc := range []struct {
			name  string
			form  url.Values
			code  int
			exact string // exact message, if any
		}{
			{"missing", nil, 4, ""},
			{"empty", url.Values{"token": {""}}, 4, ""},
			{"short", url.Values{"token": {"abc123"}}, 4, ""},
			{"not hex", url.Values{"token": {strings.Repeat("z", 32)}}, 4, ""},
			{"upper hex", url.Values{"token": {strings.ToUpper(access)}}, 4, ""},
			{"unknown", url.Values{"token": {strings.Repeat("a", 32)}}, 5, "Token not found"},
		} {
			t.Run(p+"/"+tc.name, func(t *testing.T) {
				r := postForm(t, ts.URL+p, tc.form)
				r.wantError(t, tc.code)
				if tc.exact != "" && r.str("message") != tc.exact {
					t.Errorf("message = %q, want exactly %q", r.str("message"), tc.exact)
				}
			})
		}
		t.Run(p+"/ok", func(t *testing.T) {
			r := postForm(t, ts.URL+p, url.Values{"token": {access}})
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
			if !hex32.MatchString(r.str("task_token")) {
				t.Errorf("task_token = %q, want 32 hex", r.str("task_token"))
			}
		})
	}
	// An expired session is "Token not found" too.
	now = now.Add(25 * time.Hour)
	r := postForm(t, ts.URL+"/v1/create_task", url.Values{"token": {access}})
	r.wantError(t, 5)
	if r.str("message") != "Token not found" {
		t.Errorf("expired: message = %q, want exactly \"Token not found\"", r.str("message"))
	}
}

func TestUploadURLBase(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		host      string
		proto     string
		want      string
	}{
		{"request host", "", "", "", ""}, // filled with the test server's URL
		{"other host", "", "thumbs.example:8080", "", "http://thumbs.example:8080/v1/upload_file"},
		{"forwarded https", "", "thumbs.example", "https", "https://thumbs.example/v1/upload_file"},
		{"bogus forwarded proto", "", "thumbs.example", "gopher", "http://thumbs.example/v1/upload_file"},
		{"public url", "https://pub.example.com", "thumbs.example", "", "https://pub.example.com/v1/upload_file"},
		{"public url trailing slash", "https://pub.example.com/", "", "", "https://pub.example.com/v1/upload_file"},
		{"public url with path", "https://pub.example.com/thumbd/", "", "http", "https://pub.example.com/thumbd/v1/upload_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := newTestServer(t, Config{PublicURL: tc.publicURL})
			req := newRequest(t, http.MethodPost, ts.URL+"/v1/create_task", strings.NewReader("token="+fakeAccess))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			r := do(t, req)
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
			want := tc.want
			if want == "" {
				want = ts.URL + "/v1/upload_file"
			}
			if got := r.str("upload_url"); got != want {
				t.Errorf("upload_url = %q, want %q", got, want)
			}
		})
	}
}

// toError maps each engine error to its Qencode code, also when wrapped.
func TestEngineErrorMapping(t *testing.T) {
	tests := []struct {
		err   error
		code  int
		exact string
	}{
		{engine.ErrBadAPIKey, 2, ""},
		{engine.ErrUnknownAPIKey, 3, ""},
		{engine.ErrBadToken, 4, ""},
		{engine.ErrTokenNotFound, 5, "Token not found"},
		{fmt.Errorf("lookup: %w", engine.ErrTokenNotFound), 5, "Token not found"},
		{engine.ErrTaskStarted, 4, ""},
		{engine.ErrBusy, 8, ""},
		{engine.ErrShuttingDown, 8, ""},
		{&engine.ValidationError{Field: "format[0].width", Reason: "too big"}, 14, ""},
		{errors.New("disk on fire"), 1, "Internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			ts, fe := newTestServer(t, Config{})
			fe.sessionErr, fe.createErr, fe.startErr = tc.err, tc.err, tc.err
			q := `{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail"}]}}`
			for _, c := range []struct {
				path string
				form url.Values
			}{
				{"/v1/access_token", url.Values{"api_key": {"5a2a846a26ace1"}}},
				{"/v1/create_task", url.Values{"token": {fakeAccess}}},
				{"/v1/start_encode2", url.Values{"task_token": {fakeTask}, "query": {q}}},
			} {
				r := postForm(t, ts.URL+c.path, c.form)
				r.wantError(t, tc.code)
				if tc.exact != "" && r.str("message") != tc.exact {
					t.Errorf("%s: message = %q, want exactly %q", c.path, r.str("message"), tc.exact)
				}
				if tc.code == 14 && !strings.Contains(r.str("message"), "format[0].width") {
					t.Errorf("%s: message %q does not name the field", c.path, r.str("message"))
				}
				if tc.code == 1 && strings.Contains(r.str("message"), "disk on fire") {
					t.Errorf("%s: internal error text leaked: %q", c.path, r.str("message"))
				}
			}
		})
	}
}

// Clients send "//v1/status", trailing slashes and GETs with fields in the
// query string.
func TestPathsAndMethods(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.snaps[fakeTask] = engine.Snapshot{State: engine.StateCompleted, Percent: 100}
	q := url.Values{"task_tokens": {fakeTask}}.Encode()
	for _, p := range []string{"/v1/status", "//v1/status", "/v1//status", "/v1/status/", "//v1/status/", "/v1/status//"} {
		t.Run("POST "+p, func(t *testing.T) {
			r := postForm(t, ts.URL+p, url.Values{"task_tokens": {fakeTask}})
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
			if _, ok := r.body["statuses"].(map[string]any)[fakeTask]; !ok {
				t.Errorf("no status for the token: %s", r.raw)
			}
		})
		t.Run("GET "+p, func(t *testing.T) {
			r := get(t, ts.URL+p+"?"+q)
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
			if _, ok := r.body["statuses"].(map[string]any)[fakeTask]; !ok {
				t.Errorf("no status for the token: %s", r.raw)
			}
		})
	}
	for _, p := range []string{"//v1/access_token", "/v1/access_token/"} {
		t.Run("GET "+p, func(t *testing.T) {
			r := get(t, ts.URL+p+"?api_key=5a2a846a26ace1")
			if code := r.apiCode(t); code != 0 {
				t.Fatalf("error = %d: %s", code, r.raw)
			}
		})
	}
	t.Run("GET start_encode2", func(t *testing.T) {
		v := url.Values{"task_token": {fakeTask}, "payload": {"p q"},
			"query": {`{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail","width":"64"}]}}`}}
		r := get(t, ts.URL+"/v1/start_encode2?"+v.Encode())
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
		sc := fe.lastStart(t)
		if sc.token != fakeTask || sc.spec.Payload != "p q" || sc.spec.Outputs[0].Width != 64 {
			t.Errorf("engine got %+v", sc)
		}
		if sc.spec.Query != v.Get("query") {
			t.Errorf("spec.Query = %q, want the query as sent, %q", sc.spec.Query, v.Get("query"))
		}
	})
	t.Run("fields split between query string and body", func(t *testing.T) {
		r := postForm(t, ts.URL+"/v1/start_encode2?task_token="+fakeTask,
			url.Values{"query": {`{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail"}]}}`}})
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
	})
}

func TestHealthAndReady(t *testing.T) {
	tests := []struct {
		name   string
		ready  func(context.Context) error
		status int
		reason string
	}{
		{"no ready func", nil, 200, ""},
		{"ready", func(context.Context) error { return nil }, 200, ""},
		{"not ready", func(context.Context) error { return errors.New("ffmpeg not found in PATH") }, 503, "ffmpeg not found in PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := newTestServer(t, Config{Ready: tc.ready})
			h := get(t, ts.URL+"/healthz")
			if h.status != 200 || !h.isJSON() {
				t.Errorf("/healthz: status %d, Content-Type %q", h.status, h.header.Get("Content-Type"))
			}
			r := get(t, ts.URL+"/readyz")
			if r.status != tc.status {
				t.Errorf("/readyz status = %d, want %d; body %s", r.status, tc.status, r.raw)
			}
			if !r.isJSON() || r.body == nil {
				t.Errorf("/readyz is not JSON: %q", r.raw)
			}
			if tc.reason != "" && r.str("reason") != tc.reason {
				t.Errorf("/readyz reason = %q, want %q", r.str("reason"), tc.reason)
			}
		})
	}
}

func newLocal(t *testing.T) (*storage.Local, string) {
	t.Helper()
	parent := t.TempDir()
	l, err := storage.NewLocal(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	return l, parent
}

func putFile(t *testing.T, l *storage.Local, name, body string) {
	t.Helper()
	if _, err := l.Put(context.Background(), name, strings.NewReader(body), ""); err != nil {
		t.Fatal(err)
	}
}

func TestStorageServesFiles(t *testing.T) {
	l, _ := newLocal(t)
	tok := fakeTask
	files := []struct {
		name, body, ctype string
	}{
		{tok + "/thumbnails.vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthumb_0001.png\n", "text/vtt"},
		{tok + "/thumb_0001.png", "\x89PNG fake", "image/png"},
		{tok + "/thumb_0002.jpg", "\xff\xd8\xff fake jpeg", "image/jpeg"},
		{tok + "/thumb_0003.jpeg", "\xff\xd8\xff fake jpeg", "image/jpeg"},
		{tok + "/thumbnails-1/sprite_0001.webp", "RIFF fake webp", "image/webp"},
	}
	for _, f := range files {
		putFile(t, l, f.name, f.body)
	}
	ts, _ := newTestServer(t, Config{Files: l})
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			r := get(t, ts.URL+"/storage/"+f.name)
			if r.status != 200 {
				t.Fatalf("status = %d", r.status)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, f.ctype) {
				t.Errorf("Content-Type = %q, want %s", ct, f.ctype)
			}
			if string(r.raw) != f.body {
				t.Errorf("body = %q, want %q", r.raw, f.body)
			}
			// HEAD works and sends no body.
			h := do(t, newRequest(t, http.MethodHead, ts.URL+"/storage/"+f.name, nil))
			if h.status != 200 || len(h.raw) != 0 || !strings.HasPrefix(h.header.Get("Content-Type"), f.ctype) {
				t.Errorf("HEAD: status %d, %d body bytes, Content-Type %q", h.status, len(h.raw), h.header.Get("Content-Type"))
			}
		})
	}
	t.Run("double slash", func(t *testing.T) {
		r := get(t, ts.URL+"//storage//"+tok+"/thumb_0001.png")
		if r.status != 200 || string(r.raw) != "\x89PNG fake" {
			t.Errorf("status %d, body %q", r.status, r.raw)
		}
	})
}

// keptStores are the stores kept files are served from: the data
// directory, and a bucket on a real S3 server.
func keptStores(t *testing.T) map[string]interface {
	Files
	Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error)
} {
	l, _ := newLocal(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "kept")
	k, err := s3store.NewKept(s3store.New(s3store.Options{HTTPHosts: []string{s3test.Host}, Guard: netguard.New(netguard.Policy{AllowPrivate: true})}),
		"s3://"+url.PathEscape(srv.AccessKey)+":"+url.PathEscape(srv.Secret)+"@"+srv.Endpoint+"/kept/prefix")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]interface {
		Files
		Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error)
	}{"local": l, "s3": k}
}

func TestStorageRange(t *testing.T) {
	for store, l := range keptStores(t) {
		t.Run(store, func(t *testing.T) { testStorageRange(t, l) })
	}
}

func testStorageRange(t *testing.T, l interface {
	Files
	Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error)
}) {
	name := fakeTask + "/thumb_0001.jpg"
	if _, err := l.Put(t.Context(), name, strings.NewReader("0123456789"), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	ts, _ := newTestServer(t, Config{Files: l})
	t.Run("whole", func(t *testing.T) {
		r := get(t, ts.URL+"/storage/"+name)
		if r.status != 200 || string(r.raw) != "0123456789" || r.header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("status %d, body %q, Content-Type %q", r.status, r.raw, r.header.Get("Content-Type"))
		}
		if r := get(t, ts.URL+"/storage/"+fakeTask+"/missing.jpg"); r.status != http.StatusNotFound {
			t.Errorf("missing file: status %d, want 404", r.status)
		}
	})
	for _, tc := range []struct {
		rng, body, contentRange string
	}{
		{"bytes=2-5", "2345", "bytes 2-5/10"},
		{"bytes=7-", "789", "bytes 7-9/10"},
		{"bytes=-3", "789", "bytes 7-9/10"},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, ts.URL+"/storage/"+name, nil)
			req.Header.Set("Range", tc.rng)
			r := do(t, req)
			if r.status != http.StatusPartialContent {
				t.Fatalf("status = %d, want 206", r.status)
			}
			if string(r.raw) != tc.body {
				t.Errorf("body = %q, want %q", r.raw, tc.body)
			}
			if cr := r.header.Get("Content-Range"); cr != tc.contentRange {
				t.Errorf("Content-Range = %q, want %q", cr, tc.contentRange)
			}
			if ct := r.header.Get("Content-Type"); ct != "image/jpeg" {
				t.Errorf("Content-Type = %q, want image/jpeg", ct)
			}
		})
	}
	t.Run("unsatisfiable", func(t *testing.T) {
		req := newRequest(t, http.MethodGet, ts.URL+"/storage/"+name, nil)
		req.Header.Set("Range", "bytes=50-60")
		if r := do(t, req); r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("status = %d, want 416", r.status)
		}
	})
}

func TestStorageNotFound(t *testing.T) {
	l, parent := newLocal(t)
	const secret = "top secret"
	if err := os.WriteFile(filepath.Join(parent, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	putFile(t, l, fakeTask+"/thumb_0001.png", "png")
	// A folder that is no task's, like the uploads a farm shares.
	putFile(t, l, "uploads/"+fakeTask+"/"+fakeTask, secret)
	// A link inside the store that points out of it.
	if err := os.Symlink(filepath.Join(parent, "secret.txt"), filepath.Join(l.Dir(), fakeTask, "link.png")); err != nil {
		t.Fatal(err)
	}
	ts, _ := newTestServer(t, Config{Files: l})
	for _, p := range []string{
		"/storage/" + fakeTask + "/missing.png",
		"/storage/nothing/here.png",
		"/storage/" + fakeTask,
		"/storage/" + fakeTask + "/",
		"/storage/",
		"/storage/../secret.txt",
		"/storage/" + fakeTask + "/../../secret.txt",
		"/storage/%2e%2e/secret.txt",
		"/storage/" + fakeTask + "/%2e%2e/%2e%2e/secret.txt",
		"/storage/..%2fsecret.txt",
		"/storage/" + fakeTask + "/..%2F..%2Fsecret.txt",
		"/storage/%2E%2E%2Fsecret.txt",
		"/storage/" + fakeTask + "/link.png",
		"/storage/uploads/" + fakeTask + "/" + fakeTask,
	} {
		t.Run(p, func(t *testing.T) {
			r := get(t, ts.URL+p)
			if r.status != http.StatusNotFound {
				t.Errorf("status = %d, want 404; body %q", r.status, r.raw)
			}
			if bytes.Contains(r.raw, []byte(secret)) {
				t.Errorf("served the file outside the store")
			}
		})
	}
	t.Run("no Files configured", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		if r := get(t, ts.URL+"/storage/"+fakeTask+"/thumb_0001.png"); r.status != http.StatusNotFound {
			t.Errorf("status = %d, want 404", r.status)
		}
	})
}

// Logs never carry api keys or tokens, from bodies or query strings.
func TestLogsHoldNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts, fe := newTestServer(t, Config{Logger: logger})
	fe.startErr = errors.New("store down") // logged as an internal error
	const key = "secretkey1234567"
	postForm(t, ts.URL+"/v1/access_token", url.Values{"api_key": {key}})
	get(t, ts.URL+"/v1/access_token?api_key="+key)
	postForm(t, ts.URL+"/v1/create_task?token="+fakeAccess, nil)
	postForm(t, ts.URL+"/v1/start_encode2", url.Values{"task_token": {fakeTask},
		"query": {`{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail","destination":{"url":"s3://h/b/k","key":"AKIDSECRET","secret":"SSSECRET"}}]}}`}}).wantError(t, 1)
	mu.Lock()
	defer mu.Unlock()
	if buf.Len() == 0 {
		t.Fatal("nothing was logged at debug level")
	}
	for _, s := range []string{key, fakeAccess, fakeTask, "AKIDSECRET", "SSSECRET"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log holds %q:\n%s", s, buf.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
