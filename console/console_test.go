package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const tok = "0123456789abcdef0123456789abcdef"

// fakeBackend records what the handler asks and answers with canned
// values.
type fakeBackend struct {
	tasks   []Task
	detail  Detail
	err     error
	filters []Filter
	scopes  []Scope
}

func (f *fakeBackend) Tasks(_ context.Context, flt Filter) ([]Task, error) {
	f.filters = append(f.filters, flt)
	return f.tasks, f.err
}

func (f *fakeBackend) Task(_ context.Context, s Scope, token string) (Detail, error) {
	f.scopes = append(f.scopes, s)
	if f.err != nil {
		return Detail{}, f.err
	}
	if token != f.detail.Token {
		return Detail{}, ErrNotFound
	}
	return f.detail, nil
}

func get(t *testing.T, h http.Handler, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://thumbs.test"+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestPages(t *testing.T) {
	h := New(Config{Backend: &fakeBackend{}})
	for _, tc := range []struct {
		path     string
		code     int
		ctype    string
		contains string
		location string
	}{
		{"/console", http.StatusFound, "", "", "/console/"},
		{"/console/", http.StatusOK, "text/html", `<script src="app.js">`, ""},
		{"/console/app.js", http.StatusOK, "text/javascript", "function parseVTT", ""},
		{"/console/style.css", http.StatusOK, "text/css", ".sheet .tile", ""},
		{"/console/queries.json", http.StatusOK, "application/json", `"output": "thumbnail"`, ""},
		{"/console/nope.js", http.StatusNotFound, "", "", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, body := get(t, h, tc.path, nil)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.code, body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if loc := res.Header.Get("Location"); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
			if tc.code == http.StatusOK && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("no CSP on %s", tc.path)
			}
		})
	}
}

// TestNoRemoteAssets: the page loads nothing from elsewhere (it must work
// offline and without a CDN).
func TestNoRemoteAssets(t *testing.T) {
	for _, name := range []string{"static/index.html", "static/style.css"} {
		b, err := static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s refers to %q: the console must not load anything from elsewhere", name, bad)
			}
		}
	}
}

func TestConfigEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want configReply
	}{
		{"open", Config{}, configReply{KeyRequired: false, UploadURL: "http://thumbs.test/v1/upload_file", PublicURL: "http://thumbs.test"}},
		{"keys", Config{APIKeys: []string{"k1k1k1k1k1k1k1"}}, configReply{KeyRequired: true, UploadURL: "http://thumbs.test/v1/upload_file", PublicURL: "http://thumbs.test"}},
		{"public url", Config{PublicURL: "https://t.example.com/"}, configReply{UploadURL: "https://t.example.com/v1/upload_file", PublicURL: "https://t.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Backend = &fakeBackend{}
			res, body := get(t, New(tc.cfg), "/console/api/config", nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			var got configReply
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTaskList(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	task := Task{Token: tok, Created: created, Status: "completed", Percent: 100, Source: "https://a/b.mp4", Outputs: []string{"thumbnails"}, Images: 3}
	keys := []string{"first-key-000000", "second-key-11111"}
	for _, tc := range []struct {
		name   string
		keys   []string
		query  string
		header string
		code   int
		want   Filter // what the backend is asked; checked when code is 200
		errHas string
	}{
		{name: "all", query: "", code: 200, want: Filter{Limit: DefaultLimit, Scope: Scope{Base: "http://thumbs.test"}}},
		{name: "one status", query: "?status=error", code: 200, want: Filter{Limit: DefaultLimit, States: []string{"error"}, Scope: Scope{Base: "http://thumbs.test"}}},
		{name: "active", query: "?status=active,created", code: 200,
			want: Filter{Limit: DefaultLimit, States: []string{"queued", "downloading", "encoding", "saving", "created"}, Scope: Scope{Base: "http://thumbs.test"}}},
		{name: "all named", query: "?status=all&limit=5", code: 200, want: Filter{Limit: 5, Scope: Scope{Base: "http://thumbs.test"}}},
		{name: "limit capped", query: "?limit=99999", code: 200, want: Filter{Limit: MaxLimit, Scope: Scope{Base: "http://thumbs.test"}}},
		{name: "bad status", query: "?status=done", code: 400, errHas: "status must be one of"},
		{name: "bad limit", query: "?limit=0", code: 400, errHas: "limit must be"},
		{name: "key missing", keys: keys, code: 401, errHas: "THUMBD_API_KEYS"},
		{name: "key unknown", keys: keys, header: "third-key-2222222", code: 401, errHas: "unknown API key"},
		{name: "key given", keys: keys, header: "second-key-11111", code: 200,
			want: Filter{Limit: DefaultLimit, Scope: Scope{Key: "second-key-11111", Base: "http://thumbs.test"}}},
		{name: "key ignored without keys", header: "whatever-key-123", code: 200, want: Filter{Limit: DefaultLimit, Scope: Scope{Base: "http://thumbs.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &fakeBackend{tasks: []Task{task}}
			h := New(Config{Backend: be, APIKeys: tc.keys})
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[KeyHeader] = tc.header
			}
			res, body := get(t, h, "/console/api/tasks"+tc.query, hdr)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.code, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code != 200 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tc.errHas) {
					t.Errorf("error body %s, want one that says %q", body, tc.errHas)
				}
				if len(be.filters) != 0 {
					t.Errorf("the backend was asked %+v on a refused request", be.filters)
				}
				return
			}
			if len(be.filters) != 1 || !reflect.DeepEqual(be.filters[0], tc.want) {
				t.Errorf("backend asked %+v, want %+v", be.filters, tc.want)
			}
			var got listReply
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Tasks) != 1 || got.Tasks[0].Token != tok || got.Tasks[0].Status != "completed" || !got.Tasks[0].Created.Equal(created) {
				t.Errorf("tasks = %+v", got.Tasks)
			}
		})
	}
}

func TestEmptyListIsArray(t *testing.T) {
	_, body := get(t, New(Config{Backend: &fakeBackend{}}), "/console/api/tasks", nil)
	if strings.TrimSpace(body) != `{"tasks":[]}` {
		t.Errorf("body %s, want an empty array", body)
	}
}

func TestTaskDetail(t *testing.T) {
	detail := Detail{
		Task:       Task{Token: tok, Status: "completed", Percent: 100},
		Query:      json.RawMessage(`{"query":{"source":"https://a/b.mp4"}}`),
		StatusJSON: json.RawMessage(`{"status":"completed","images":[]}`),
	}
	for _, tc := range []struct {
		name    string
		path    string
		err     error
		code    int
		errHas  string
		checkCB bool
	}{
		{name: "found", path: tok, code: 200, checkCB: true},
		{name: "unknown", path: strings.Repeat("f", 32), code: 404, errHas: "no such task"},
		{name: "not a token", path: "abc", code: 404, errHas: "32 hex digits"},
		{name: "backend fails", path: tok, err: errors.New("disk on fire"), code: 500, errHas: "disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &fakeBackend{detail: detail, err: tc.err}
			res, body := get(t, New(Config{Backend: be}), "/console/api/tasks/"+tc.path, nil)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.code, body)
			}
			if tc.code != 200 {
				if !strings.Contains(body, tc.errHas) {
					t.Errorf("body %s lacks %q", body, tc.errHas)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if q, _ := got["query"].(map[string]any); q == nil || q["query"] == nil {
				t.Errorf("query = %v, want the object as given", got["query"])
			}
			if got["status"] != "completed" {
				t.Errorf("status = %v, want the task's state", got["status"])
			}
			if s, _ := got["status_json"].(map[string]any); s == nil || s["status"] != "completed" {
				t.Errorf("status_json = %v, want /v1/status's object", got["status_json"])
			}
			if cb, ok := got["callbacks"].([]any); !ok || len(cb) != 0 {
				t.Errorf("callbacks = %#v, want []", got["callbacks"])
			}
			if len(be.scopes) != 1 || be.scopes[0].Base != "http://thumbs.test" {
				t.Errorf("scopes = %+v", be.scopes)
			}
		})
	}
}

func TestUnknownEndpoint(t *testing.T) {
	res, body := get(t, New(Config{Backend: &fakeBackend{}}), "/console/api/nothing", nil)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "no such console endpoint") {
		t.Errorf("%d %s", res.StatusCode, body)
	}
}

func TestMethods(t *testing.T) {
	h := New(Config{Backend: &fakeBackend{}})
	for _, p := range []string{"/console/api/tasks", "/console/"} {
		req := httptest.NewRequest(http.MethodPost, "http://thumbs.test"+p, strings.NewReader("x"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", p, rec.Code)
		}
	}
}
