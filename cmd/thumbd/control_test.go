package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
)

// TestControlPlaneOff checks that /_thumbd/ does not exist unless
// THUMBD_TEST_API=1.
func TestControlPlaneOff(t *testing.T) {
	th := runThumbd(t, testConfig(t, nil))
	for _, p := range []string{"/_thumbd/reset", "/_thumbd/hold", "/_thumbd/callbacks", "/_thumbd/state"} {
		resp, err := http.PostForm(th.base+p, url.Values{"state": {"queued"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestControlPlane exercises each /_thumbd/ endpoint against the real
// wiring, with a real S3 server and a real callback receiver.
func TestControlPlane(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "ctl")
	src := serveTestdata(t) + "/clip.mp4"
	th := runThumbd(t, testConfig(t, func(c *app.Config) {
		c.TestAPI = true
		c.CallbackRetry = 5 * time.Second
		c.S3RetryWindow = 2 * time.Second
	}))
	base := th.base
	ctl := func(t *testing.T, path string, form url.Values) {
		t.Helper()
		post(t, base, "/_thumbd/"+path, form, nil)
	}
	ctlError := func(t *testing.T, path string, form url.Values) (int, string) {
		t.Helper()
		var r struct {
			Error   int    `json:"error"`
			Message string `json:"message"`
		}
		json.Unmarshal(postRaw(t, base, "/_thumbd/"+path, form), &r)
		return r.Error, r.Message
	}
	dest := func(key string) map[string]any {
		return map[string]any{"url": s3.URL("ctl", key), "key": s3.AccessKey, "secret": s3.Secret}
	}
	s3Query := func(key string) map[string]any {
		return map[string]any{"source": src, "format": []any{
			map[string]any{"output": "thumbnail", "time": "0.5", "width": 160, "destination": dest(key)}}}
	}
	desc := func(st wireStatus) string {
		if st.ErrorDescription == nil {
			return ""
		}
		return *st.ErrorDescription
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"hold for polls: queued, encoding, completed", func(t *testing.T) {
			ctl(t, "hold", url.Values{"state": {"queued"}, "polls": {"1"}})
			ctl(t, "hold", url.Values{"state": {"encoding"}, "polls": {"1"}})
			token := startTask(t, base, thumbQuery(src, nil), "")
			var seen []string
			for range 3 {
				st, _ := status(t, base, token)
				seen = append(seen, st.Status)
			}
			if want := []string{"queued", "encoding", "completed"}; !slices.Equal(seen, want) {
				t.Errorf("polls saw %v, want %v", seen, want)
			}
		}},
		{"hold one task until released", func(t *testing.T) {
			free := startTask(t, base, thumbQuery(src, nil), "")
			waitStatus(t, base, free, 30*time.Second, "completed")
			token := createTask(t, base)
			ctl(t, "hold", url.Values{"state": {"downloading"}, "task_token": {token}})
			start(t, base, token, thumbQuery(src, nil), "")
			for range 3 {
				if st, _ := status(t, base, token); st.Status != "downloading" {
					t.Fatalf("held task is %s, want downloading", st.Status)
				}
				time.Sleep(100 * time.Millisecond)
			}
			var r struct{ Released int }
			post(t, base, "/_thumbd/release", url.Values{"task_token": {token}}, &r)
			if r.Released != 1 {
				t.Errorf("released %d holds, want 1", r.Released)
			}
			if st, _ := status(t, base, token); st.Status != "completed" {
				t.Errorf("after its release the task is %s, want completed", st.Status)
			}
		}},
		{"fail the next task", func(t *testing.T) {
			ctl(t, "fail/task", url.Values{"message": {"Source file is not available (injected)"}})
			failed := startTask(t, base, thumbQuery(src, nil), "")
			st := waitStatus(t, base, failed, 30*time.Second, "completed", "error")
			if st.Status != "error" || st.Error != 1 || desc(st) != "Source file is not available (injected)" || st.Percent > 1 {
				t.Errorf("status %s error %d %q at %v%%", st.Status, st.Error, desc(st), st.Percent)
			}
			next := startTask(t, base, thumbQuery(src, nil), "")
			if st := waitStatus(t, base, next, 30*time.Second, "completed", "error"); st.Status != "completed" {
				t.Errorf("the task after the failed one: %s (%s)", st.Status, desc(st))
			}
		}},
		{"fail a task as it is saved", func(t *testing.T) {
			ctl(t, "fail/task", url.Values{"state": {"saving"}, "message": {"disk full"}})
			token := startTask(t, base, thumbQuery(src, nil), "")
			st := waitStatus(t, base, token, 30*time.Second, "completed", "error")
			if st.Status != "error" || desc(st) != "disk full" || len(st.Images) != 0 {
				t.Errorf("status %s %q with %d images", st.Status, desc(st), len(st.Images))
			}
		}},
		{"destination fails less often than thumbd retries", func(t *testing.T) {
			ctl(t, "fail/destination", url.Values{"times": {"2"}})
			token := startTask(t, base, s3Query("retried/a.png"), "")
			st := waitStatus(t, base, token, 30*time.Second, "completed", "error")
			if st.Status != "completed" {
				t.Fatalf("status %s (%s)", st.Status, desc(st))
			}
			if keys := s3.ListKeys(t, "ctl", "retried/"); !slices.Equal(keys, []string{"retried/a.png"}) {
				t.Errorf("bucket holds %v", keys)
			}
		}},
		{"destination keeps failing", func(t *testing.T) {
			ctl(t, "fail/destination", url.Values{"times": {"1000"}, "code": {"500"}})
			token := startTask(t, base, s3Query("failed/a.png"), "")
			st := waitStatus(t, base, token, 30*time.Second, "completed", "error")
			if st.Status != "error" || !strings.Contains(desc(st), s3.URL("ctl", "failed/a.png")) || strings.Contains(desc(st), s3.Secret) {
				t.Errorf("status %s %q, want an error naming the destination", st.Status, desc(st))
			}
			if keys := s3.ListKeys(t, "ctl", "failed/"); len(keys) != 0 {
				t.Errorf("bucket holds %v", keys)
			}
		}},
		{"callback fails once, then is delivered", func(t *testing.T) {
			rcv := newHookReceiver(t, http.StatusOK)
			ctl(t, "fail/callback", url.Values{"times": {"1"}})
			token := startTask(t, base, thumbQuery(src, map[string]any{"callback_url": rcv.url}), "p")
			waitStatus(t, base, token, 30*time.Second, "completed")
			forms := rcv.waitForms(t, 2)
			var cbs callbacksReply
			deadline := time.Now().Add(10 * time.Second)
			for {
				post(t, base, "/_thumbd/callbacks", nil, &cbs)
				if len(cbs.Callbacks) == 2 && cbs.Callbacks[1].Done || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(cbs.Callbacks) != 2 {
				t.Fatalf("inspector: %+v", cbs)
			}
			q, s := cbs.Callbacks[0], cbs.Callbacks[1]
			if q.Event != "queued" || len(q.Attempts) != 2 || !q.Attempts[0].Injected || q.Attempts[0].Code != 500 ||
				q.Attempts[1].Injected || q.Attempts[1].Code != 200 || !q.Delivered || q.Code != 200 {
				t.Errorf("queued callback: %+v", q)
			}
			if s.Event != "saved" || len(s.Attempts) != 1 || !s.Delivered || s.TaskToken != token || s.URL != netguard.ShowURL(rcv.url) {
				t.Errorf("saved callback: %+v", s)
			}
			if s.Fields["payload"] != "p" || s.Fields["event"] != "saved" || s.Fields["status"] != forms[1].Get("status") {
				t.Errorf("inspector fields %v differ from what the receiver got %v", s.Fields, forms[1])
			}
		}},
		{"reset forgets tasks, tokens, files and callbacks", func(t *testing.T) {
			rcv := newHookReceiver(t, http.StatusOK)
			access := accessToken(t, base)
			token := startTask(t, base, thumbQuery(src, map[string]any{"callback_url": rcv.url}), "")
			st := waitStatus(t, base, token, 30*time.Second, "completed")
			rcv.waitForms(t, 2)
			file := st.Images[0].URL
			ctl(t, "hold", url.Values{"state": {"encoding"}})
			held := startTask(t, base, thumbQuery(src, nil), "")
			waitHeld(t, base, held)

			ctl(t, "reset", nil)
			for _, tok := range []string{token, held} {
				st, _ := status(t, base, tok)
				if st.Status != "error" || !strings.Contains(desc(st), "not found") {
					t.Errorf("after reset, task %s: %s %q", tok[:6], st.Status, desc(st))
				}
			}
			if code, _ := get(t, file); code != 404 {
				t.Errorf("after reset, GET %s: %d", file, code)
			}
			var r struct {
				Error   int    `json:"error"`
				Message string `json:"message"`
			}
			json.Unmarshal(postRaw(t, base, "/v1/create_task", url.Values{"token": {access}}), &r)
			if r.Error != 5 || r.Message != "Token not found" {
				t.Errorf("create_task with an access token from before the reset: %+v", r)
			}
			var cbs callbacksReply
			post(t, base, "/_thumbd/callbacks", nil, &cbs)
			var state struct {
				Holds []any          `json:"holds"`
				Held  map[string]any `json:"held"`
			}
			post(t, base, "/_thumbd/state", nil, &state)
			if len(cbs.Callbacks) != 0 || len(state.Holds) != 0 || len(state.Held) != 0 {
				t.Errorf("after reset: %d callbacks, holds %v, held %v", len(cbs.Callbacks), state.Holds, state.Held)
			}
			// thumbd works as before.
			next := startTask(t, base, thumbQuery(src, nil), "")
			if st := waitStatus(t, base, next, 30*time.Second, "completed", "error"); st.Status != "completed" {
				t.Errorf("a task after the reset: %s", st.Status)
			}
		}},
		{"bad input", func(t *testing.T) {
			cases := []struct {
				path string
				form url.Values
				code int
				msg  string
			}{
				{"hold", url.Values{"state": {"completed"}}, 14, "state"},
				{"hold", nil, 14, "state"},
				{"hold", url.Values{"state": {"queued"}, "polls": {"-1"}}, 14, "polls"},
				{"hold", url.Values{"state": {"queued"}, "task_token": {"nope"}}, 4, "token"},
				{"release", url.Values{"state": {"nonsense"}}, 14, "state"},
				{"fail/task", url.Values{"state": {"queued"}}, 14, "state"},
				{"fail/destination", url.Values{"times": {"many"}}, 14, "times"},
				{"fail/callback", url.Values{"code": {"200"}}, 14, "code"},
			}
			for _, c := range cases {
				code, msg := ctlError(t, c.path, c.form)
				if code != c.code || !strings.Contains(msg, c.msg) {
					t.Errorf("%s %v: error %d %q, want %d mentioning %q", c.path, c.form, code, msg, c.code, c.msg)
				}
			}
		}},
	}
	for _, tt := range tests {
		ctl(t, "reset", nil)
		t.Run(tt.name, tt.run)
	}
}

// TestControlPlaneFromNode runs the JavaScript example of the test-control
// plane in docs/test-control.md (e2e/node/control-example.js), through
// Qencode's official Node SDK.
func TestControlPlaneFromNode(t *testing.T) {
	dir := "../../e2e/node"
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "qencode-api")); err != nil {
		t.Fatalf("the Node SDK is not installed: run scripts/deps.sh (%v)", err)
	}
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.TestAPI = true; c.CallbackRetry = time.Second }))
	cmd := exec.Command("node", "control-example.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "THUMBD_ENDPOINT="+th.base, "SOURCE_URL="+serveTestdata(t)+"/clip.mp4")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("node control-example.js: %v\n%s", err, out)
	}
}
