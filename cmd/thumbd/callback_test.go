package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/netguard"
)

// hookReceiver is a real HTTP receiver of callbacks.
type hookReceiver struct {
	mu    sync.Mutex
	forms []url.Values
	code  int
	url   string
}

func newHookReceiver(t *testing.T, code int) *hookReceiver {
	h := &hookReceiver{code: code}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("callback %s with content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("callback body: %v", err)
		}
		h.mu.Lock()
		h.forms = append(h.forms, r.PostForm)
		h.mu.Unlock()
		w.WriteHeader(h.code)
		io.WriteString(w, "receiver says no")
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hooks/qencode?project=42"
	return h
}

// waitForms waits until the receiver has n forms and returns them.
func (h *hookReceiver) waitForms(t *testing.T, n int) []url.Values {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.forms)
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d callbacks, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkEvents waits for the receiver's callbacks to be the events want,
// then for settle, in which nothing more may come (a task's callbacks
// come once), and checks their events, in order.
func (h *hookReceiver) checkEvents(t *testing.T, settle time.Duration, want ...string) {
	t.Helper()
	h.waitForms(t, len(want))
	time.Sleep(settle)
	var events []string
	for _, f := range h.waitForms(t, len(want)) {
		events = append(events, f.Get("event"))
	}
	if !slices.Equal(events, want) {
		t.Errorf("callbacks %v, want %v", events, want)
	}
}

// TestCallbacks runs tasks with a callback_url against a real receiver and
// checks every field of every callback, in order.
func TestCallbacks(t *testing.T) {
	src := serveTestdata(t)
	th := runThumbd(t, testConfig(t, nil))
	tests := []struct {
		name       string
		source     string
		wantEvents []string
		wantStatus string
	}{
		{"completed", src + "/clip.mp4", []string{"queued", "saved"}, "completed"},
		{"failed", src + "/missing.mp4", []string{"queued", "error", "saved"}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newHookReceiver(t, http.StatusOK)
			payload := `{"job": "cb-` + tt.name + `", "n": [1, 2]}`
			token := startTask(t, th.base, thumbQuery(tt.source, map[string]any{"callback_url": rcv.url}), payload)
			final := waitStatus(t, th.base, token, 30*time.Second, "completed", "error")
			if final.Status != tt.wantStatus {
				t.Fatalf("task ended %s, want %s", final.Status, tt.wantStatus)
			}
			rcv.waitForms(t, len(tt.wantEvents))
			time.Sleep(200 * time.Millisecond) // nothing more may come
			forms := rcv.waitForms(t, len(tt.wantEvents))
			if len(forms) != len(tt.wantEvents) {
				t.Fatalf("receiver got %d callbacks, want %d", len(forms), len(tt.wantEvents))
			}
			_, finalRaw := status(t, th.base, token)
			for i, f := range forms {
				ev := tt.wantEvents[i]
				wantKeys := []string{"callback_type", "event", "payload", "status", "task_token"}
				if ev == "error" {
					wantKeys = append(wantKeys, "error_code", "error_message")
					slices.Sort(wantKeys)
				}
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range f {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(keys, wantKeys) {
					t.Errorf("callback %d (%s) has fields %v, want %v", i, ev, keys, wantKeys)
				}
				if f.Get("event") != ev || f.Get("task_token") != token || f.Get("callback_type") != "task" || f.Get("payload") != payload {
					t.Errorf("callback %d: event %q task_token %q callback_type %q payload %q", i, f.Get("event"), f.Get("task_token"), f.Get("callback_type"), f.Get("payload"))
				}
				var st map[string]any
				if err := json.Unmarshal([]byte(f.Get("status")), &st); err != nil {
					t.Fatalf("callback %d: status is not JSON: %v", i, err)
				}
				if ev == "queued" {
					if st["status"] != "queued" || st["payload"] != payload {
						t.Errorf("queued callback's status: %v", st)
					}
					continue
				}
				// The final callbacks carry exactly what /v1/status returns.
				var want map[string]any
				json.Unmarshal(finalRaw, &want)
				if !reflect.DeepEqual(st, want) {
					t.Errorf("callback %d (%s) status\n%s\nwant what /v1/status returns\n%s", i, ev, f.Get("status"), finalRaw)
				}
				if ev == "error" {
					if f.Get("error_code") != "1" || f.Get("error_message") != *final.ErrorDescription || !strings.Contains(f.Get("error_message"), "404") {
						t.Errorf("error callback: error_code %q error_message %q (description %q)", f.Get("error_code"), f.Get("error_message"), *final.ErrorDescription)
					}
				}
			}
		})
	}
}

// TestCallbackReceiverFails checks that a receiver answering 500 gets the
// task a warning, and that the task completes all the same.
func TestCallbackReceiverFails(t *testing.T) {
	src := serveTestdata(t)
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.CallbackRetry = 800 * time.Millisecond; c.TestAPI = true }))
	rcv := newHookReceiver(t, http.StatusInternalServerError)
	token := startTask(t, th.base, thumbQuery(src+"/clip.mp4", map[string]any{"callback_url": rcv.url}), "")
	st := waitStatus(t, th.base, token, 30*time.Second, "completed", "error")
	if st.Status != "completed" || st.Error != 0 {
		t.Fatalf("task ended %s error %d", st.Status, st.Error)
	}
	// Both callbacks (queued and saved) are retried, then given up.
	deadline := time.Now().Add(15 * time.Second)
	var warnings []map[string]any
	for time.Now().Before(deadline) {
		_, raw := status(t, th.base, token)
		var s struct{ Warnings []map[string]any }
		json.Unmarshal(raw, &s)
		if warnings = s.Warnings; len(warnings) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(warnings) != 2 {
		t.Fatalf("warnings %v, want one per callback", warnings)
	}
	for _, w := range warnings {
		// The URL without its query; the status, never the reply's body.
		want := "Error sending callback to " + netguard.ShowURL(rcv.url) + " 500: Internal Server Error"
		if w["message"] != "Callback delivery error" || w["details"] != want {
			t.Errorf("warning %v, want message %q details %q", w, "Callback delivery error", want)
		}
	}
	if st, _ := status(t, th.base, token); st.Status != "completed" {
		t.Errorf("status after the warnings: %s", st.Status)
	}
	forms := rcv.waitForms(t, 4)
	// The inspector shows each delivery, its attempts and reply codes.
	var cbs callbacksReply
	post(t, th.base, "/_thumbd/callbacks", url.Values{"task_token": {token}}, &cbs)
	if len(cbs.Callbacks) != 2 {
		t.Fatalf("inspector lists %d callbacks, want 2", len(cbs.Callbacks))
	}
	total := 0
	for i, c := range cbs.Callbacks {
		if c.Event != []string{"queued", "saved"}[i] || c.Delivered || !c.Done || c.Code != 500 || len(c.Attempts) < 2 || c.URL != netguard.ShowURL(rcv.url) {
			t.Errorf("callback %d: %+v", i, c)
		}
		total += len(c.Attempts)
	}
	rcv.mu.Lock()
	sent := len(rcv.forms)
	rcv.mu.Unlock()
	if total != sent || sent < len(forms) {
		t.Errorf("inspector counts %d attempts, the receiver got %d requests", total, sent)
	}
}

// callbacksReply is GET /_thumbd/callbacks.
type callbacksReply struct {
	Callbacks []callbackJSON `json:"callbacks"`
}

// callbackJSON is one callback in the inspector.
type callbackJSON struct {
	ID        int               `json:"id"`
	TaskToken string            `json:"task_token"`
	Event     string            `json:"event"`
	URL       string            `json:"url"`
	Fields    map[string]string `json:"fields"`
	Code      int               `json:"code"`
	Delivered bool              `json:"delivered"`
	Done      bool              `json:"done"`
	Attempts  []struct {
		Code     int     `json:"code"`
		Error    *string `json:"error"`
		Injected bool    `json:"injected"`
	} `json:"attempts"`
}
