package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
)

func TestRedactQuery(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"order kept, numbers as written",
			`{"query": {"source": "https://a/v.mp4", "format": [{"output": "thumbnail", "width": 320, "time": 0.150}], "z": true, "a": null}}`,
			`{"query":{"source":"https://a/v.mp4","format":[{"output":"thumbnail","width":320,"time":0.150}],"z":true,"a":null}}`},
		{"destination secrets",
			`{"format": [{"output": "thumbnail", "key": "not-a-secret", "destination": {"url": "s3://h/b/k.png", "key": "AKIAEXAMPLE", "secret": "wJalrXUtnFEMI"}}]}`,
			`{"format":[{"output":"thumbnail","key":"not-a-secret","destination":{"url":"s3://h/b/k.png","key":"AKIA…","secret":"wJal…"}}]}`},
		{"destination list",
			`{"destination": [{"key": "k1k1k1k1", "secret": "s1s1s1s1"}, {"key": "k2k2k2k2", "secret": "s2"}]}`,
			`{"destination":[{"key":"k1k1…","secret":"s1s1…"},{"key":"k2k2…","secret":"…"}]}`},
		{"callback URL and source password",
			`{"callback_url": "https://hooks.example.com/cb/SECRET?token=abc", "source": "https://user:pw@media.example.com/v.mp4"}`,
			`{"callback_url":"https://hooks.example.com/…","source":"https://user:***@media.example.com/v.mp4"}`},
		{"not JSON", `{"query": `, `"{\"query\": "`},
		{"trailing garbage", `{} {}`, `"{} {}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactQuery(tc.in)
			if string(got) != tc.want {
				t.Errorf("RedactQuery:\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/cb?t=secret": "https://hooks.example.com/…",
		"http://127.0.0.1:9000":                 "http://127.0.0.1:9000/",
		"http://127.0.0.1:9000/":                "http://127.0.0.1:9000/",
		"not a url":                             "…",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStoreBackend reads tasks from a real MemoryStore through the
// engine, the way thumbd wires it.
func TestStoreBackend(t *testing.T) {
	ctx := context.Background()
	store := engine.NewMemoryStore()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	eng := engine.New(engine.Config{Store: store, Now: clock})
	keyA, keyB := "key-of-alice-0000", "key-of-bob-000000"
	task := func(key string) string {
		access, _, err := eng.NewSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		tt, err := eng.CreateTask(ctx, access)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	a1, b1, a2 := task(keyA), task(keyB), task(keyA)
	query := `{"query": {"source": "https://media.example.com/v.mp4", "format": [{"output": "thumbnails", "interval": "1", "destination": {"url": "s3://h/b/", "key": "AKIAEXAMPLE", "secret": "topsecret"}}], "callback_url": "https://cb.example.com/hook/xyz"}}`
	err := store.UpdateTask(ctx, a2, func(r *engine.TaskRecord) error {
		r.Spec = &engine.Spec{Source: "https://media.example.com/v.mp4", Query: query,
			Outputs: []engine.Output{{Kind: engine.KindThumbnails}}}
		r.Snap.State, r.Snap.Percent = engine.StateEncoding, 40
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deliveries := []callback.Delivery{
		{TaskToken: b1, Event: engine.EventQueued, URL: "https://cb.example.com/b"},
		{TaskToken: a2, Event: engine.EventQueued, URL: "https://cb.example.com/hook/xyz", Fields: url.Values{"status": {"queued"}}, Code: 500, Done: true,
			Attempts: []callback.Attempt{{At: now, Code: 503, Error: "503: busy"}, {At: now.Add(time.Second), Code: 500, Error: "500: down"}}},
	}
	be := &StoreBackend{Store: store,
		Status: func(s engine.Snapshot, base string) any {
			return map[string]any{"status": s.State, "status_url": base + "/v1/status"}
		},
		Callbacks: func() []callback.Delivery { return deliveries }}

	list := func(f Filter) string {
		t.Helper()
		got, err := be.Tasks(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range got {
			names = append(names, map[string]string{a1: "a1", a2: "a2", b1: "b1"}[g.Token])
		}
		return strings.Join(names, " ")
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want string
	}{
		{"everything, newest first", Filter{}, "a2 b1 a1"},
		{"alice's", Filter{Scope: Scope{Key: keyA}}, "a2 a1"},
		{"bob's", Filter{Scope: Scope{Key: keyB}}, "b1"},
		{"a stranger's", Filter{Scope: Scope{Key: "someone-else-000"}}, ""},
		{"created", Filter{States: []string{"created"}}, "b1 a1"},
		{"running, alice's", Filter{States: []string{"queued", "encoding"}, Scope: Scope{Key: keyA}}, "a2"},
		{"limit", Filter{Limit: 1}, "a2"},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	got, err := be.Tasks(ctx, Filter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if s := got[0]; s.Status != "encoding" || s.Percent != 40 || s.Source != "https://media.example.com/v.mp4" || strings.Join(s.Outputs, ",") != "thumbnails" {
		t.Errorf("summary = %+v", s)
	}

	if _, err := be.Task(ctx, Scope{Key: keyB}, a2); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob reading alice's task: %v, want ErrNotFound", err)
	}
	if _, err := be.Task(ctx, Scope{}, strings.Repeat("0", 32)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown task: %v, want ErrNotFound", err)
	}
	d, err := be.Task(ctx, Scope{Key: keyA, Base: "http://thumbs.test"}, a2)
	if err != nil {
		t.Fatal(err)
	}
	q := string(d.Query)
	if strings.Contains(q, "topsecret") || strings.Contains(q, "AKIAEXAMPLE") || strings.Contains(q, "xyz") || !strings.Contains(q, `"interval":"1"`) {
		t.Errorf("query = %s: want it as sent, secrets hidden", q)
	}
	if string(d.StatusJSON) != `{"status":"encoding","status_url":"http://thumbs.test/v1/status"}` {
		t.Errorf("status = %s", d.StatusJSON)
	}
	if len(d.Callbacks) != 1 {
		t.Fatalf("callbacks = %+v, want a2's one", d.Callbacks)
	}
	if c := d.Callbacks[0]; c.Event != "queued" || c.URL != "https://cb.example.com/…" || c.Code != 500 || c.Attempts != 2 || c.Delivered || !c.Done ||
		c.Error != "500: down" || c.At == nil || !c.At.Equal(now.Add(time.Second)) {
		t.Errorf("callback = %+v", c)
	}
	d, err = be.Task(ctx, Scope{}, a1)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Query) != "null" || d.StatusJSON == nil || d.Status != "created" || len(d.Callbacks) != 0 {
		t.Errorf("a task not started: %+v", d)
	}
}
