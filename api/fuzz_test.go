package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/engine"
)

// FuzzDecodeQuery feeds start_encode2's query decoder arbitrary text. It
// must never panic; it either returns a Spec or an error that maps to a
// Qencode code other than "internal error", with a message; and a Spec it
// returns must go through the engine's validation without a panic.
func FuzzDecodeQuery(f *testing.F) {
	seed, err := os.ReadFile("../testdata/qencode-seed-query.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	for _, s := range []string{
		`{"query":{"source":"https://example.com/v.mp4","format":[{"output":"thumbnail","time":"0.5","width":"160"}]}}`,
		`{"query":{"source":"s3://k:s@h/b/v.mp4","format":[{"output":"thumbnails","interval":2,"sprite":1,"columns":"5","destination":[{"url":"s3://h/b/"}]}]}}`,
		`{"query":{"source":"tus:abc","format":[{"output":"mp4","size":"320x240","time":1e308}]}}`,
		`{"query":"{\"source\":\"x\"}"}`,
		`{"query":{"format":{}}}`,
		`{"query":null}`,
		`[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		spec, err := decodeQuery(raw)
		if err != nil {
			if e := toError(err); e.Code == codeOK || e.Code == codeInternal || e.Message == "" {
				t.Fatalf("decodeQuery error %#v maps to %+v, want a user's error with a message", err, e)
			}
			return
		}
		_ = engine.Validate(spec)
	})
}

// FuzzForm sends the API arbitrary requests: any content type, any body,
// any query string, to the methods that parse forms and task tokens. Every
// reply must be HTTP 200 (or 404/405 for no such method) with a JSON body
// whose "error" is an integer, as Qencode's clients expect.
func FuzzForm(f *testing.F) {
	f.Add("/v1/status", "application/x-www-form-urlencoded", "task_tokens[]=fedcba9876543210fedcba9876543210", "")
	f.Add("/v1/status", "application/json", `{"task_tokens":["a,b, ,c"]}`, "task_token=x")
	f.Add("/v1/start_encode2", "application/json", `{"task_token":"fedcba9876543210fedcba9876543210","query":{"query":{"source":"x"}}}`, "")
	f.Add("/v1/start_encode2", "application/x-www-form-urlencoded", "task_token=t&query=%7B%7D&payload=p", "")
	f.Add("/v1/access_token", "multipart/form-data; boundary=x", "--x\r\n", "api_key=%zz")
	f.Add("/v1/create_task", "application/json; charset=utf-8", `{"token": 5}`, "")
	f.Add("/v1/status", "text/plain", "\x00\xff", ";;;")
	srv := New(Config{Engine: &fakeEngine{snaps: map[string]engine.Snapshot{
		fakeTask: {State: engine.StateCompleted, Percent: 100},
	}}}).Handler()
	f.Fuzz(func(t *testing.T, path, ctype, body, query string) {
		if !strings.HasPrefix(path, "/v1/") || strings.ContainsAny(path, "?# \r\n\x00") {
			path = "/v1/status"
		}
		req, err := http.NewRequest(http.MethodPost, "http://thumbd.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK && w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("POST %s: HTTP %d, want 200", path, w.Code)
		}
		var reply map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
			t.Fatalf("POST %s: the reply is not a JSON object: %q", path, w.Body.String())
		}
		var code int
		if err := json.Unmarshal(reply["error"], &code); err != nil {
			t.Fatalf("POST %s: the reply's error is not an integer: %q", path, w.Body.String())
		}
		if code != 0 && !bytes.Contains(reply["message"], []byte{'"'}) {
			t.Fatalf("POST %s: error %d without a message: %q", path, code, w.Body.String())
		}
	})
}
