package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestReadmeGoExample runs the README's Go example of the test-control
// plane against thumbd's real wiring.
func TestReadmeGoExample(t *testing.T) {
	th := runThumbd(t, testConfig(t, func(c *Config) { c.TestAPI = true; c.CallbackRetry = time.Second }))
	readmeGoExample(t, th.base, serveTestdata(t)+"/clip.mp4")
}

// readmeGoExample is the README's example, verbatim from "thumbd := ".
func readmeGoExample(t *testing.T, base, source string) {
	// call posts form fields to thumbd and decodes its JSON reply.
	call := func(path string, form url.Values, reply any) {
		t.Helper()
		resp, err := http.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(reply); err != nil {
			t.Fatal(err)
		}
	}
	var ok struct{ Error int }
	call("/_thumbd/reset", nil, &ok)
	call("/_thumbd/hold", url.Values{"state": {"queued"}, "polls": {"1"}}, &ok)
	call("/_thumbd/hold", url.Values{"state": {"encoding"}, "polls": {"1"}}, &ok)
	call("/_thumbd/fail/callback", url.Values{"times": {"1"}}, &ok) // the first delivery fails

	// The code under test: what your application does against Qencode.
	var auth struct{ Token string }
	call("/v1/access_token", url.Values{"api_key": {"my-project-key-0001"}}, &auth)
	var task struct {
		TaskToken string `json:"task_token"`
	}
	call("/v1/create_task", url.Values{"token": {auth.Token}}, &task)
	query := `{"query": {"source": "` + source + `", "callback_url": "http://127.0.0.1:9/hook",
	           "format": [{"output": "thumbnail", "time": "0.5", "width": 320}]}}`
	call("/v1/start_encode2", url.Values{"task_token": {task.TaskToken}, "query": {query}}, &ok)

	// Each poll sees the next state: no sleeps, no flakes.
	for _, want := range []string{"queued", "encoding", "completed"} {
		var st struct {
			Statuses map[string]struct{ Status string }
		}
		call("/v1/status", url.Values{"task_tokens[]": {task.TaskToken}}, &st)
		if got := st.Statuses[task.TaskToken].Status; got != want {
			t.Fatalf("status %q, want %q", got, want)
		}
	}

	// What was posted to callback_url, and how each attempt went.
	var sent struct {
		Callbacks []struct {
			Event    string
			Fields   map[string]string
			Attempts []struct {
				Code     int
				Injected bool
			}
		}
	}
	for i := 0; i < 50 && len(sent.Callbacks) < 2; i++ {
		call("/_thumbd/callbacks?task_token="+task.TaskToken, nil, &sent)
		time.Sleep(100 * time.Millisecond)
	}
	if len(sent.Callbacks) != 2 || sent.Callbacks[0].Event != "queued" || sent.Callbacks[1].Event != "saved" ||
		!sent.Callbacks[0].Attempts[0].Injected {
		t.Fatalf("callbacks: %+v", sent.Callbacks)
	}
}
