package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const (
	tokA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tokC = "cccccccccccccccccccccccccccccccc"
)

// statuses returns a reply's statuses object, keyed by task token.
func statuses(t *testing.T, r reply) map[string]map[string]any {
	t.Helper()
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("error = %d: %s", code, r.raw)
	}
	m, ok := r.body["statuses"].(map[string]any)
	if !ok {
		t.Fatalf("no statuses object: %s", r.raw)
	}
	out := map[string]map[string]any{}
	for k, v := range m {
		s, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("statuses[%q] = %#v, want an object", k, v)
		}
		out[k] = s
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestStatusTokenForms(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.snaps[tokA] = engine.Snapshot{State: engine.StateEncoding, Percent: 50}
	fe.snaps[tokB] = engine.Snapshot{State: engine.StateCompleted, Percent: 100}
	fe.snaps[tokC] = engine.Snapshot{State: engine.StateQueued}
	tests := []struct {
		name string
		send func(t *testing.T, u string) reply
		want []string
	}{
		{"task_tokens[] repeated", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_tokens[]": {tokA, tokB}})
		}, []string{tokA, tokB}},
		{"task_tokens single", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_tokens": {tokA}})
		}, []string{tokA}},
		{"task_tokens repeated", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_tokens": {tokA, tokC}})
		}, []string{tokA, tokC}},
		{"comma list", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_tokens": {tokA + "," + tokB + ", " + tokC + ","}})
		}, []string{tokA, tokB, tokC}},
		{"comma list in task_tokens[]", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_tokens[]": {tokA + "," + tokB}})
		}, []string{tokA, tokB}},
		{"task_token", func(t *testing.T, u string) reply {
			return postForm(t, u, url.Values{"task_token": {tokB}})
		}, []string{tokB}},
		{"JSON array", func(t *testing.T, u string) reply {
			return postJSON(t, u, `{"task_tokens":["`+tokA+`","`+tokB+`"]}`)
		}, []string{tokA, tokB}},
		{"JSON string", func(t *testing.T, u string) reply {
			return postJSON(t, u, `{"task_tokens":"`+tokC+`"}`)
		}, []string{tokC}},
		{"JSON task_tokens[]", func(t *testing.T, u string) reply {
			return postJSON(t, u, `{"task_tokens[]":["`+tokA+`"]}`)
		}, []string{tokA}},
		{"GET query string", func(t *testing.T, u string) reply {
			return get(t, u+"?task_tokens[]="+tokA+"&task_tokens[]="+tokC)
		}, []string{tokA, tokC}},
		{"query string plus body", func(t *testing.T, u string) reply {
			return postForm(t, u+"?task_tokens="+tokA, url.Values{"task_tokens": {tokB}})
		}, []string{tokA, tokB}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := statuses(t, tc.send(t, ts.URL+"/v1/status"))
			if got := keys(st); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("statuses for %q, want %q", got, tc.want)
			}
			for _, tok := range tc.want {
				if want := string(fe.snaps[tok].State); st[tok]["status"] != want {
					t.Errorf("%s: status = %v, want %s", tok[:4], st[tok]["status"], want)
				}
			}
		})
	}
}

func TestStatusNoTokens(t *testing.T) {
	ts, _ := newTestServer(t, Config{})
	for name, form := range map[string]url.Values{
		"none":        nil,
		"empty":       {"task_tokens": {""}},
		"commas":      {"task_tokens[]": {" , ,"}},
		"other field": {"token": {tokA}},
	} {
		t.Run(name, func(t *testing.T) {
			postForm(t, ts.URL+"/v1/status", form).wantError(t, 13)
		})
	}
	t.Run("JSON", func(t *testing.T) {
		postJSON(t, ts.URL+"/v1/status", `{}`).wantError(t, 13)
	})
}

func TestStatusUnknownToken(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.snaps[tokA] = engine.Snapshot{State: engine.StateCompleted, Percent: 100}
	for _, unknown := range []string{tokB, "not-a-token"} {
		st := statuses(t, postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens[]": {tokA, unknown}}))
		s, ok := st[unknown]
		if !ok {
			t.Fatalf("unknown token %q missing from statuses", unknown)
		}
		checkStatusShape(t, s)
		if s["status"] != "error" || s["error"] != json.Number("1") {
			t.Errorf("unknown token: status %v, error %v; want error, 1", s["status"], s["error"])
		}
		if d, _ := s["error_description"].(string); d == "" {
			t.Errorf("unknown token: error_description = %#v, want a message", s["error_description"])
		}
		if st[tokA]["status"] != "completed" {
			t.Errorf("known token beside an unknown one: %v", st[tokA])
		}
	}
}

// checkStatusShape checks the keys and JSON types every status object has.
func checkStatusShape(t *testing.T, s map[string]any) {
	t.Helper()
	if _, ok := s["status"].(string); !ok {
		t.Errorf("status = %#v, want a string", s["status"])
	}
	for _, k := range []string{"percent", "duration", "source_size"} {
		if _, ok := s[k].(json.Number); !ok {
			t.Errorf("%s = %#v, want a number", k, s[k])
		}
	}
	if n, ok := s["error"].(json.Number); !ok || (n != "0" && n != "1") {
		t.Errorf("error = %#v, want the integer 0 or 1", s["error"])
	}
	d, present := s["error_description"]
	if !present {
		t.Errorf("error_description missing")
	}
	if s["error"] == json.Number("0") && d != nil {
		t.Errorf("error_description = %#v with error 0, want null", d)
	}
	if u, _ := s["status_url"].(string); !strings.HasSuffix(u, "/v1/status") || !strings.Contains(u, "://") {
		t.Errorf("status_url = %#v, want an absolute URL of /v1/status", s["status_url"])
	}
	for _, k := range []string{"images", "videos", "audios", "texts", "warnings"} {
		if _, ok := s[k].([]any); !ok {
			t.Errorf("%s = %#v, want an array (never null)", k, s[k])
		}
	}
}

func TestStatusObject(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	fe.snaps[tokA] = engine.Snapshot{State: engine.StateCreated}
	fe.snaps[tokB] = engine.Snapshot{State: engine.StateEncoding, Percent: 8.3743842364532011,
		Duration: 12345678 * time.Microsecond, SourceSize: 1234567, Payload: "pl"}
	fe.snaps[tokC] = engine.Snapshot{State: engine.StateError, Percent: 20, Error: "ffprobe: source is not a video"}
	st := statuses(t, postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens[]": {tokA, tokB, tokC}}))
	for tok, s := range st {
		t.Run(tok[:4], func(t *testing.T) { checkStatusShape(t, s) })
	}

	a := st[tokA]
	if a["error"] != json.Number("0") || a["error_description"] != nil || a["percent"] != json.Number("0") {
		t.Errorf("fresh task: %v", a)
	}
	if a["status_url"] != ts.URL+"/v1/status" {
		t.Errorf("status_url = %v, want %s/v1/status", a["status_url"], ts.URL)
	}
	if a["payload"] != nil {
		t.Errorf("payload = %#v, want null when none was given", a["payload"])
	}

	b := st[tokB]
	if b["status"] != "encoding" || b["percent"] != json.Number("8.37") {
		t.Errorf("encoding: status %v, percent %v; want encoding, 8.37", b["status"], b["percent"])
	}
	if b["duration"] != json.Number("12.346") || b["source_size"] != json.Number("1234567") {
		t.Errorf("duration %v, source_size %v", b["duration"], b["source_size"])
	}
	if b["payload"] != "pl" {
		t.Errorf("payload = %#v, want \"pl\"", b["payload"])
	}

	c := st[tokC]
	if c["status"] != "error" || c["error"] != json.Number("1") || c["error_description"] != "ffprobe: source is not a video" {
		t.Errorf("failed task: status %v, error %v, error_description %v", c["status"], c["error"], c["error_description"])
	}

	// The raw JSON has [] rather than null for empty arrays.
	var raw struct {
		Statuses map[string]map[string]json.RawMessage `json:"statuses"`
	}
	r := postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens": {tokA}})
	if err := json.Unmarshal(r.raw, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"images", "videos", "audios", "texts", "warnings"} {
		if got := string(raw.Statuses[tokA][k]); got != "[]" {
			t.Errorf("%s = %s, want []", k, got)
		}
	}
}

// sampleSnapshot has an image on S3, a sprite with frames and a VTT kept
// locally, and a warning.
func sampleSnapshot(token string) engine.Snapshot {
	return engine.Snapshot{
		State:      engine.StateCompleted,
		Percent:    100,
		Duration:   30*time.Second + 40*time.Millisecond,
		SourceSize: 4815162,
		Payload:    "order-42",
		Images: []engine.Image{
			{
				Output: 0, N: 0, Kind: engine.KindImage, Format: "png", UserTag: "15_320x240",
				Location: storage.Location{URL: "s3://s3.example.com:9000/bucket/thumb/15_320x240.png", Type: "custom_s3",
					Scheme: "https", Host: "s3.example.com", Port: 9000, Bucket: "bucket", Key: "thumb/15_320x240.png"},
				Width: 320, Height: 240,
				Frames: []engine.Frame{{Requested: 4506 * time.Millisecond, Actual: 4504600 * time.Microsecond, Keyframe: false}},
			},
			{
				Output: 1, N: 0, Kind: engine.KindSprite, Format: "jpg", UserTag: "sprite",
				Location: storage.Location{Type: "local", Key: token + "/thumbnails-1/sprite_0001.jpg"},
				Width:    480, Height: 90,
				Frames: []engine.Frame{
					{Requested: 0, Actual: 0, Keyframe: true},
					{Requested: 10 * time.Second, Actual: 10010 * time.Millisecond, Keyframe: false},
					{Requested: 20 * time.Second, Actual: 20 * time.Second, Keyframe: true},
				},
			},
			{
				Output: 1, N: 1, Kind: engine.KindVTT, Format: "vtt", UserTag: "sprite",
				Location: storage.Location{Type: "local", Key: token + "/thumbnails-1/thumbnails.vtt"},
			},
		},
		Warnings: []engine.Warning{{Message: "frame not exact", Details: "asked 4.506s, got 4.5045s", Tag: "image-0-0"}},
	}
}

func TestStatusImages(t *testing.T) {
	l, _ := newLocal(t)
	putFile(t, l, tokA+"/thumbnails-1/sprite_0001.jpg", "sprite bytes")
	putFile(t, l, tokA+"/thumbnails-1/thumbnails.vtt", "WEBVTT\n")
	ts, fe := newTestServer(t, Config{Files: l})
	fe.snaps[tokA] = sampleSnapshot(tokA)
	s := statuses(t, postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens": {tokA}}))[tokA]
	checkStatusShape(t, s)
	images, _ := s["images"].([]any)
	if len(images) != 3 {
		t.Fatalf("got %d images, want 3", len(images))
	}
	im := func(i int) map[string]any { m, _ := images[i].(map[string]any); return m }
	stor := func(i int) map[string]any { m, _ := im(i)["storage"].(map[string]any); return m }

	for i, want := range []struct {
		tag, userTag, url, typ, key, format string
		host, bucket                        any
	}{
		{"image-0-0", "15_320x240", "s3://s3.example.com:9000/bucket/thumb/15_320x240.png", "custom_s3", "thumb/15_320x240.png", "png", "s3.example.com", "bucket"},
		{"image-1-0", "sprite", ts.URL + "/storage/" + tokA + "/thumbnails-1/sprite_0001.jpg", "local", tokA + "/thumbnails-1/sprite_0001.jpg", "jpg", nil, nil},
		{"image-1-1", "sprite", ts.URL + "/storage/" + tokA + "/thumbnails-1/thumbnails.vtt", "local", tokA + "/thumbnails-1/thumbnails.vtt", "vtt", nil, nil},
	} {
		m, st := im(i), stor(i)
		if m["tag"] != want.tag || m["user_tag"] != want.userTag || m["url"] != want.url {
			t.Errorf("image %d: tag %v, user_tag %v, url %v; want %s, %s, %s", i, m["tag"], m["user_tag"], m["url"], want.tag, want.userTag, want.url)
		}
		if st == nil {
			t.Errorf("image %d: storage = %#v, want an object", i, m["storage"])
			continue
		}
		for _, k := range []string{"type", "host", "bucket", "key", "format"} {
			if _, ok := st[k]; !ok {
				t.Errorf("image %d: storage has no %q", i, k)
			}
		}
		if st["type"] != want.typ || st["key"] != want.key || st["format"] != want.format || st["host"] != want.host || st["bucket"] != want.bucket {
			t.Errorf("image %d: storage = %v", i, st)
		}
	}
	if p := stor(0)["port"]; p != json.Number("9000") {
		t.Errorf("image 0: storage.port = %#v, want 9000", p)
	}
	if im(0)["time"] != json.Number("4.505") || im(0)["requested_time"] != json.Number("4.506") {
		t.Errorf("image 0: time %v, requested_time %v; want 4.505 (rounded to ms), 4.506", im(0)["time"], im(0)["requested_time"])
	}
	frames, _ := im(1)["frames"].([]any)
	if len(frames) != 3 {
		t.Fatalf("sprite frames = %#v, want 3", im(1)["frames"])
	}
	if f, _ := frames[1].(map[string]any); f["requested_time"] != json.Number("10") || f["time"] != json.Number("10.01") {
		t.Errorf("sprite frame 1 = %v", f)
	}
	warnings, _ := s["warnings"].([]any)
	if len(warnings) != 1 {
		t.Fatalf("warnings = %#v", s["warnings"])
	}
	if w, _ := warnings[0].(map[string]any); w["message"] != "frame not exact" || w["tag"] != "image-0-0" || w["details"] == "" {
		t.Errorf("warning = %v", w)
	}

	// The local URLs the status gives are served.
	for i, body := range map[int]string{1: "sprite bytes", 2: "WEBVTT\n"} {
		r := get(t, im(i)["url"].(string))
		if r.status != 200 || string(r.raw) != body {
			t.Errorf("GET %v: status %d, body %q", im(i)["url"], r.status, r.raw)
		}
	}
}

func TestStatusPublicURL(t *testing.T) {
	ts, fe := newTestServer(t, Config{PublicURL: "https://thumbd.example/"})
	fe.snaps[tokA] = sampleSnapshot(tokA)
	s := statuses(t, postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens": {tokA, tokB}}))
	if got := s[tokA]["status_url"]; got != "https://thumbd.example/v1/status" {
		t.Errorf("status_url = %v", got)
	}
	if got := s[tokB]["status_url"]; got != "https://thumbd.example/v1/status" {
		t.Errorf("unknown token: status_url = %v", got)
	}
	images, _ := s[tokA]["images"].([]any)
	if m, _ := images[1].(map[string]any); m["url"] != "https://thumbd.example/storage/"+tokA+"/thumbnails-1/sprite_0001.jpg" {
		t.Errorf("local url = %v", m["url"])
	}
}

// TestStatusGolden pins one full status reply. Run with -update to rewrite.
func TestStatusGolden(t *testing.T) {
	ts, fe := newTestServer(t, Config{PublicURL: "https://thumbd.example"})
	fe.snaps[tokA] = sampleSnapshot(tokA)
	r := postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens[]": {tokA}})
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("error = %d: %s", code, r.raw)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, r.raw, "", "  "); err != nil {
		t.Fatalf("reply is not JSON: %v", err)
	}
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("status reply differs from %s (rerun with -update if intended):\ngot:\n%s\nwant:\n%s", golden, got.Bytes(), want)
	}
}
