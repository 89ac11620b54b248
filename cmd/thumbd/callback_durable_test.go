package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/pgtest"
)

// lateReceiver is a callback receiver whose address is known before it
// listens: until up, connections to it are refused.
type lateReceiver struct {
	addr  string
	mu    sync.Mutex
	forms []url.Values
}

func newLateReceiver(t *testing.T) *lateReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return &lateReceiver{addr: ln.Addr().String()}
}

func (h *lateReceiver) url() string { return "http://" + h.addr + "/hooks/qencode?project=42" }

func (h *lateReceiver) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		h.mu.Lock()
		h.forms = append(h.forms, r.PostForm)
		h.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func (h *lateReceiver) waitForms(t *testing.T, n int, within time.Duration) []url.Values {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		got := slices.Clone(h.forms)
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d callbacks in %v, want %d", len(got), within, n)
		}
	}
}

// waitCallbacks polls the inspector of base until ok holds for the task's
// callbacks.
func waitCallbacks(t *testing.T, base, token string, within time.Duration, ok func([]callbackJSON) bool) []callbackJSON {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		var cbs callbacksReply
		post(t, base, "/_thumbd/callbacks", url.Values{"task_token": {token}}, &cbs)
		if ok(cbs.Callbacks) {
			return cbs.Callbacks
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks of %s after %v: %+v", token[:6], within, cbs.Callbacks)
		}
	}
}

// refusedOnce: the queued callback was refused at least once; saved waits
// behind it.
func refusedOnce(cbs []callbackJSON) bool {
	return len(cbs) == 2 && len(cbs[0].Attempts) > 0 && !cbs[0].Done && !cbs[1].Done
}

// delivered: both callbacks were delivered.
func delivered(cbs []callbackJSON) bool {
	return len(cbs) == 2 && cbs[0].Delivered && cbs[1].Delivered
}

// checkLateCallbacks checks what a receiver that came up late got: queued
// then saved, each once, with the fields of the completed task, and the
// inspector's record of the attempts refused before.
func checkLateCallbacks(t *testing.T, rcv *lateReceiver, token string, cbs []callbackJSON) {
	t.Helper()
	rcv.waitForms(t, 2, time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive by now
	rcv.mu.Lock()
	forms := slices.Clone(rcv.forms)
	rcv.mu.Unlock()
	if len(forms) != 2 || forms[0].Get("event") != "queued" || forms[1].Get("event") != "saved" {
		t.Fatalf("receiver got %v, want queued then saved, once each", forms)
	}
	saved := forms[1]
	var st struct {
		Status string           `json:"status"`
		Images []map[string]any `json:"images"`
		Error  int              `json:"error"`
	}
	if err := json.Unmarshal([]byte(saved.Get("status")), &st); err != nil {
		t.Fatalf("saved status %q: %v", saved.Get("status"), err)
	}
	if saved.Get("task_token") != token || saved.Get("callback_type") != "task" || saved.Get("payload") != "order-42" ||
		st.Status != "completed" || st.Error != 0 || len(st.Images) < 2 || st.Images[0]["user_tag"] != "mid" {
		t.Errorf("saved callback %v, want task %s completed with its images and its payload", saved, token)
	}
	for i, c := range cbs {
		if len(c.Attempts) == 0 || c.Attempts[len(c.Attempts)-1].Error != nil || c.Code != 200 || c.URL != netguard.ShowURL(rcv.url()) {
			t.Errorf("callback %d: %+v, want delivered", i, c)
		}
	}
	if q := cbs[0]; len(q.Attempts) < 2 || q.Attempts[0].Error == nil || !strings.Contains(*q.Attempts[0].Error, "connection refused") {
		t.Errorf("queued callback: %+v, want refused before it was delivered", q)
	}
}

// restartQuery is a small task whose callbacks go to u.
func restartQuery(src, u string) map[string]any {
	return thumbQuery(src+"/clip.mp4", map[string]any{"callback_url": u})
}

// TestCallbackSurvivesRestart checks that a callback whose receiver is
// down while thumbd restarts on the same data directory (SQLite) is still
// delivered once the receiver is up, in order, with its fields.
func TestCallbackSurvivesRestart(t *testing.T) {
	src := serveTestdata(t)
	rcv := newLateReceiver(t)
	cfg := testConfig(t, func(c *app.Config) { c.CallbackRetry = 5 * time.Minute; c.TestAPI = true })
	th := runThumbd(t, cfg)
	token := startTask(t, th.base, restartQuery(src, rcv.url()), "order-42")
	if st := waitStatus(t, th.base, token, 30*time.Second, "completed", "error"); st.Status != "completed" {
		t.Fatalf("task ended %s", st.Status)
	}
	waitCallbacks(t, th.base, token, 15*time.Second, refusedOnce)
	if err := th.stop(); err != nil {
		t.Fatal(err)
	}

	th = runThumbd(t, cfg)
	rcv.up(t)
	cbs := waitCallbacks(t, th.base, token, 30*time.Second, delivered)
	checkLateCallbacks(t, rcv, token, cbs)
	if _, raw := status(t, th.base, token); strings.Contains(string(raw), "Callback delivery error") {
		t.Errorf("status %s: a warning for a delivered callback", raw)
	}
}

// TestCallbackMovesToAnotherInstance checks, on PostgreSQL, that a
// delivery instance A began (its receiver down) is completed by instance B
// once A has stopped.
func TestCallbackMovesToAnotherInstance(t *testing.T) {
	dbURL := pgtest.URL(t)
	src := serveTestdata(t)
	rcv := newLateReceiver(t)
	pg := func(c *app.Config) {
		c.Store, c.DatabaseURL, c.Workers, c.CallbackRetry, c.TestAPI = "postgres", dbURL, 1, 5*time.Minute, true
	}
	a := runThumbd(t, testConfig(t, pg))
	token := startTask(t, a.base, restartQuery(src, rcv.url()), "order-42")
	if st := waitStatus(t, a.base, token, 30*time.Second, "completed", "error"); st.Status != "completed" {
		t.Fatalf("task ended %s", st.Status)
	}
	waitCallbacks(t, a.base, token, 15*time.Second, refusedOnce)
	b := runThumbd(t, testConfig(t, pg))
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	rcv.up(t)
	cbs := waitCallbacks(t, b.base, token, 45*time.Second, delivered)
	checkLateCallbacks(t, rcv, token, cbs)
}
