package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
)

// thumbd is a thumbd started in this process by runThumbd.
type thumbd struct {
	base string
	stop func() error // cancels Run and returns its error
}

// runThumbd starts Run with cfg (address forced to a free port) and stops
// it at the end of the test unless stop was called.
func runThumbd(t *testing.T, cfg app.Config) *thumbd {
	t.Helper()
	return runThumbdLog(t, cfg, nil)
}

// runThumbdLog is runThumbd that also copies thumbd's log to logw when it
// is not nil.
func runThumbdLog(t *testing.T, cfg app.Config, logw io.Writer) *thumbd {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	var w io.Writer = testWriter{t}
	if logw != nil {
		w = io.MultiWriter(w, logw)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { done <- app.Run(ctx, cfg, log, listening) }()
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("thumbd did not start: %v", err)
	}
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("thumbd stopped with %v", err)
		}
	})
	return &thumbd{base: "http://" + addr, stop: stop}
}

// testConfig is the default configuration with a fresh data directory.
func testConfig(t *testing.T, mutate func(*app.Config)) app.Config {
	t.Helper()
	cfg, err := app.LoadConfig([]string{"-data-dir", t.TempDir(), "-workers", "2", "-allow-private-networks=true"}, func(string) string { return "" }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

// post posts a form to base+path and decodes the JSON reply into v (when
// not nil); it fails the test unless the reply's error is 0.
func post(t *testing.T, base, path string, form url.Values, v any) {
	t.Helper()
	var reply struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
	}
	raw := postRaw(t, base, path, form)
	if err := json.Unmarshal(raw, &reply); err != nil {
		t.Fatalf("%s: %v: %s", path, err, raw)
	}
	if reply.Error != 0 {
		t.Fatalf("%s: error %d: %s", path, reply.Error, reply.Message)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, raw)
		}
	}
}

// postRaw posts a form and returns the reply's body.
func postRaw(t *testing.T, base, path string, form url.Values) []byte {
	t.Helper()
	resp, err := http.PostForm(base+path, form)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	return b
}

const testAPIKey = "durable-test-key-0001"

// accessToken gets an access token.
func accessToken(t *testing.T, base string) string {
	t.Helper()
	var r struct{ Token string }
	post(t, base, "/v1/access_token", url.Values{"api_key": {testAPIKey}}, &r)
	return r.Token
}

// startTask creates and starts a task with query (the inner object) and
// payload, and returns its token.
func startTask(t *testing.T, base string, query map[string]any, payload string) string {
	t.Helper()
	token := createTask(t, base)
	start(t, base, token, query, payload)
	return token
}

// createTask creates a task and returns its token.
func createTask(t *testing.T, base string) string {
	t.Helper()
	var ct struct {
		TaskToken string `json:"task_token"`
	}
	post(t, base, "/v1/create_task", url.Values{"token": {accessToken(t, base)}}, &ct)
	return ct.TaskToken
}

// start starts a created task.
func start(t *testing.T, base, token string, query map[string]any, payload string) {
	t.Helper()
	q, _ := json.Marshal(map[string]any{"query": query})
	form := url.Values{"task_token": {token}, "query": {string(q)}}
	if payload != "" {
		form.Set("payload", payload)
	}
	post(t, base, "/v1/start_encode2", form, nil)
}

// status reads one task's status: decoded, and as the raw JSON object.
func status(t *testing.T, base, token string) (wireStatus, json.RawMessage) {
	t.Helper()
	var r struct {
		Statuses map[string]json.RawMessage `json:"statuses"`
	}
	post(t, base, "/v1/status", url.Values{"task_tokens[]": {token}}, &r)
	raw := r.Statuses[token]
	var st wireStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("status: %v: %s", err, raw)
	}
	return st, raw
}

// waitStatus polls until the task's status is one of want, and returns it.
func waitStatus(t *testing.T, base, token string, timeout time.Duration, want ...string) wireStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := status(t, base, token)
		for _, w := range want {
			if st.Status == w {
				return st
			}
		}
		if time.Now().After(deadline) {
			desc := ""
			if st.ErrorDescription != nil {
				desc = *st.ErrorDescription
			}
			t.Fatalf("task %s is %s (%s) after %v, want %s", token[:6], st.Status, desc, timeout, strings.Join(want, " or "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// thumbQuery is a small query: one thumbnail kept by thumbd, and a series
// of five.
func thumbQuery(src string, extra map[string]any) map[string]any {
	q := map[string]any{
		"source": src,
		"format": []any{
			map[string]any{"output": "thumbnail", "time": "0.5", "width": 160, "user_tag": "mid"},
			map[string]any{"output": "thumbnails", "interval": 2, "width": 160, "image_format": "jpg"},
		},
	}
	for k, v := range extra {
		q[k] = v
	}
	return q
}

// get fetches a URL and returns its status code and body.
func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
