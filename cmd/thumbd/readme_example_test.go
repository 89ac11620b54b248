package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
)

// testControlDoc is the manual's page of the test-control plane, whose Go
// and JavaScript examples the tests run.
const testControlDoc = "../../docs/test-control.md"

// TestReadmeGoExample runs the Go example of the test-control plane in
// docs/test-control.md against thumbd's real wiring.
func TestReadmeGoExample(t *testing.T) {
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.TestAPI = true; c.CallbackRetry = time.Second }))
	readmeGoExample(t, th.base, serveTestdata(t)+"/clip.mp4")
}

// readmeGoExample's body is the Go example in docs/test-control.md, apart
// from the final check; TestDocExamples keeps the two the same.
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

// TestDocExamples checks that the examples in docs/test-control.md are the
// code the tests run: every line of the page's Go example is in
// readmeGoExample, and every line of its JavaScript example in
// e2e/node/control-example.js (run by TestControlPlaneFromNode), in order.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile(testControlDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```(go|js)\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if _, dup := blocks[m[1]]; dup {
			t.Fatalf("%s has more than one %s example", testControlDoc, m[1])
		}
		blocks[m[1]] = m[2]
	}
	for lang, file := range map[string]string{"go": "readme_example_test.go", "js": "../../e2e/node/control-example.js"} {
		example, ok := blocks[lang]
		if !ok {
			t.Errorf("%s has no %s example", testControlDoc, lang)
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if missing := linesInOrder(example, string(src)); missing != "" {
			t.Errorf("%s: the %s example's line %q is not in %s (in that order)", testControlDoc, lang, missing, file)
		}
	}
}

// linesInOrder returns the first non-blank line of example that is not found,
// trimmed, among the lines of src after the previous one found; "" if all are.
func linesInOrder(example, src string) string {
	lines := strings.Split(src, "\n")
	i := 0
	for _, want := range strings.Split(example, "\n") {
		if want = strings.TrimSpace(want); want == "" {
			continue
		}
		for i < len(lines) && strings.TrimSpace(lines[i]) != want {
			i++
		}
		if i == len(lines) {
			return want
		}
		i++
	}
	return ""
}
