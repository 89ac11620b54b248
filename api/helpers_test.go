package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// Tokens the fake engine hands out.
const (
	fakeAccess = "0123456789abcdef0123456789abcdef"
	fakeTask   = "fedcba9876543210fedcba9876543210"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

type startCall struct {
	token string
	spec  engine.Spec
}

// fakeEngine is an in-process Engine: it records what the API asks of it
// and answers with canned values and errors.
type fakeEngine struct {
	mu sync.Mutex

	sessionErr, createErr, startErr error
	expires                         time.Time

	keys     []string // api keys passed to NewSession
	accesses []string // access tokens passed to CreateTask
	starts   []startCall
	asked    []string // task tokens passed to Status
	snaps    map[string]engine.Snapshot
}

func (f *fakeEngine) NewSession(_ context.Context, apiKey string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, apiKey)
	if f.sessionErr != nil {
		return "", time.Time{}, f.sessionErr
	}
	exp := f.expires
	if exp.IsZero() {
		exp = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	}
	return fakeAccess, exp, nil
}

func (f *fakeEngine) CreateTask(_ context.Context, accessToken string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accesses = append(f.accesses, accessToken)
	if f.createErr != nil {
		return "", f.createErr
	}
	return fakeTask, nil
}

func (f *fakeEngine) Start(_ context.Context, taskToken string, spec engine.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, startCall{taskToken, spec})
	return f.startErr
}

func (f *fakeEngine) Status(_ context.Context, taskToken string) (engine.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, taskToken)
	s, ok := f.snaps[taskToken]
	if !ok {
		return engine.Snapshot{}, engine.ErrTokenNotFound
	}
	return s, nil
}

func (f *fakeEngine) lastStart(t *testing.T) startCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.starts) == 0 {
		t.Fatal("engine.Start was not called")
	}
	return f.starts[len(f.starts)-1]
}

func (f *fakeEngine) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

// newTestServer serves cfg over HTTP; cfg.Engine defaults to a new fake.
func newTestServer(t *testing.T, cfg Config) (*httptest.Server, *fakeEngine) {
	t.Helper()
	var fe *fakeEngine
	if cfg.Engine == nil {
		fe = &fakeEngine{snaps: map[string]engine.Snapshot{}}
		cfg.Engine = fe
	}
	ts := httptest.NewServer(New(cfg).Handler())
	t.Cleanup(ts.Close)
	return ts, fe
}

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any // the JSON object, numbers as json.Number; nil if not one
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) == nil {
		r.body = m
	}
	return r
}

func newRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func postForm(t *testing.T, u string, v url.Values) reply {
	t.Helper()
	req := newRequest(t, http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func postJSON(t *testing.T, u string, body string) reply {
	t.Helper()
	req := newRequest(t, http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

func get(t *testing.T, u string) reply {
	t.Helper()
	return do(t, newRequest(t, http.MethodGet, u, nil))
}

// isJSON reports whether the reply says it is JSON.
func (r reply) isJSON() bool {
	return strings.HasPrefix(r.header.Get("Content-Type"), "application/json")
}

// apiCode checks Qencode's envelope (HTTP 200, application/json, a JSON
// object with an integer "error") and returns the error code.
func (r reply) apiCode(t *testing.T) int {
	t.Helper()
	if r.status != http.StatusOK {
		t.Errorf("HTTP status = %d, want 200; body %s", r.status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return r.intField(t, "error")
}

// intField returns an integer field of the reply's JSON object.
func (r reply) intField(t *testing.T, name string) int {
	t.Helper()
	if r.body == nil {
		t.Fatalf("reply is not a JSON object: %s", r.raw)
	}
	n, ok := r.body[name].(json.Number)
	if !ok {
		t.Fatalf("%q = %#v, want an integer; body %s", name, r.body[name], r.raw)
	}
	i, err := strconv.Atoi(string(n))
	if err != nil {
		t.Fatalf("%q = %s, want an integer", name, n)
	}
	return i
}

func (r reply) str(name string) string {
	s, _ := r.body[name].(string)
	return s
}

// wantError checks that the reply is an API error with code and a message
// holding every one of parts.
func (r reply) wantError(t *testing.T, code int, parts ...string) {
	t.Helper()
	if got := r.apiCode(t); got != code {
		t.Errorf("error = %d, want %d; body %s", got, code, r.raw)
	}
	msg, ok := r.body["message"].(string)
	if !ok || msg == "" {
		t.Errorf("message = %#v, want a non-empty string", r.body["message"])
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
