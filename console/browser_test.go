package console_test

// Browser tests: a real thumbd (internal/app, real ffmpeg) on 127.0.0.1:0
// and Debian's chromium driven by chromedp. They skip only when no
// chromium binary is found (bash scripts/deps.sh chromium installs it).
// THUMBD_CONSOLE_SCREENSHOTS=<dir> keeps a screenshot of each page.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/vtt"
)

const clip = "../testdata/clip.mp4" // 10 s, 640x360, 25 fps

// chromium returns the browser to drive, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("THUMBD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (chromium, chromium-browser, google-chrome or $THUMBD_CHROMIUM): `bash scripts/deps.sh chromium` installs it")
	return ""
}

// browser starts a headless chromium for the test and returns a context
// of its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in containers and CI
		chromedp.WindowSize(1280, 1100),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return ctx
}

// thumbd starts thumbd in this process with the console on, the given API
// keys, private networks allowed (the test serves its source and takes
// callbacks on loopback) and the test-control plane on (holds), and
// returns its base URL.
func thumbd(t *testing.T, keys ...string) string {
	t.Helper()
	args := []string{"-data-dir", t.TempDir(), "-workers", "2", "-store", "memory", "-allow-private-networks=true", "-console=1",
		"-test-api=1", "-api-keys", strings.Join(keys, ",")}
	cfg, err := app.LoadConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- app.Run(ctx, cfg, log, listening) }()
	select {
	case addr := <-listening:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("thumbd stopped with %v", err)
			}
		})
		return "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("thumbd did not start: %v", err)
	}
	return ""
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sourceServer serves the test clip over HTTP, as a source thumbd reads
// and the browser plays.
func sourceServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.ServeFile(w, r, clip)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/clip.mp4"
}

// callbackServer receives callbacks and answers 200.
func callbackServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// call posts a form to a Qencode API method and decodes the reply.
func call(t *testing.T, base, method string, form url.Values, v any) {
	t.Helper()
	resp, err := http.PostForm(base+"/v1/"+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error   int
		Message string
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error != 0 {
		t.Fatalf("%s: %s (%v)", method, b, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
}

// startTask starts a task through the API with key and returns its token.
func startTask(t *testing.T, base, key string, query map[string]any) string {
	t.Helper()
	var at struct{ Token string }
	call(t, base, "access_token", url.Values{"api_key": {key}}, &at)
	var ct struct {
		TaskToken string `json:"task_token"`
	}
	call(t, base, "create_task", url.Values{"token": {at.Token}}, &ct)
	q, _ := json.Marshal(map[string]any{"query": query})
	call(t, base, "start_encode2", url.Values{"task_token": {ct.TaskToken}, "query": {string(q)}}, nil)
	return ct.TaskToken
}

// image is what the tests read of a status's images.
type image struct {
	Tag    string  `json:"tag"`
	URL    string  `json:"url"`
	Kind   string  `json:"kind"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Time   float64 `json:"time"`

	ManifestURL string `json:"manifest_url"`
}

type status struct {
	Status           string  `json:"status"`
	ErrorDescription *string `json:"error_description"`
	Duration         float64 `json:"duration"`
	Images           []image `json:"images"`
}

// waitStatus polls /v1/status until the task has ended.
func waitStatus(t *testing.T, base, token string) status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var r struct{ Statuses map[string]status }
		call(t, base, "status", url.Values{"task_tokens[]": {token}}, &r)
		st := r.Statuses[token]
		if st.Status == "completed" || st.Status == "error" || time.Now().After(deadline) {
			if st.Status != "completed" {
				t.Fatalf("task %s is %s (%v), want completed", token, st.Status, st.ErrorDescription)
			}
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot keeps a full-page screenshot when THUMBD_CONSOLE_SCREENSHOTS
// names a folder.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("THUMBD_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	_ = os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Log(err)
	}
}

// do runs chromedp actions with a time limit, and fails the test with
// what the page shows when one fails.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#main') ? document.querySelector('#main').innerText.slice(0, 2000) : ''`))
		t.Fatalf("%s: %v\npage: %s", what, err, page)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))
}

// js runs a JavaScript statement for its effect.
func js(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }

func seriesQuery(src string) map[string]any {
	return map[string]any{
		"source": src,
		"format": []any{
			map[string]any{"output": "thumbnail", "time": "0.5", "width": 320, "user_tag": "middle"},
			map[string]any{"output": "thumbnails", "interval": "2", "width": 160, "image_format": "jpg"},
			map[string]any{"output": "thumbnails", "interval": "1", "width": 96, "sprite": "1", "columns": "4", "image_format": "jpg"},
		},
	}
}

// TestConsoleTaskList: the list shows a task started through the API and
// turns it completed without a reload; the task page shows its images.
func TestConsoleTaskList(t *testing.T) {
	ctx := browser(t)
	base := thumbd(t)
	src := sourceServer(t)

	do(t, ctx, "open the console",
		chromedp.Navigate(base+"/"), // leads to /console/
		chromedp.WaitVisible(chromedp.CSS(`#tasks`)),
		js(`window.notReloaded = true`))
	if loc := eval[string](t, ctx, `location.href`); loc != base+"/console/" {
		t.Errorf("/ led to %s, want %s/console/", loc, base)
	}

	// The task is held in encoding (test-control plane) until the list
	// has shown it running.
	call(t, base, "../_thumbd/hold", url.Values{"state": {"encoding"}}, nil)
	hook := callbackServer(t)
	query := seriesQuery(src)
	query["format"] = append(query["format"].([]any), map[string]any{"output": "metadata"})
	query["callback_url"] = hook + "/hooks/secret-path?sig=abc"
	token := startTask(t, base, "console-test-key-1", query)
	row := fmt.Sprintf(`tr[data-token="%s"]`, token)
	do(t, ctx, "the task appears, running",
		waitJS(fmt.Sprintf(`document.querySelector('%s') && document.querySelector('%s').dataset.status === 'encoding'`, row, row)))
	screenshot(t, ctx, "tasks-running")
	call(t, base, "../_thumbd/release", url.Values{"task_token": {token}}, nil)
	do(t, ctx, "the task completes",
		waitJS(fmt.Sprintf(`document.querySelector('%s').dataset.status === 'completed'`, row)))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Error("the page was reloaded; the list must update in place")
	}
	text := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s').innerText`, row))
	for _, want := range []string{"completed", "100%", src, "thumbnail, thumbnails, thumbnails, metadata", token[:8]} {
		if !strings.Contains(text, want) {
			t.Errorf("row %q lacks %q", text, want)
		}
	}
	screenshot(t, ctx, "tasks")

	// The task page shows every image of the status, loaded.
	st := waitStatus(t, base, token)
	var want []string
	for _, im := range st.Images {
		if im.Kind == "image" {
			want = append(want, im.URL)
		}
	}
	if len(want) != 1+5 { // the thumbnail and a series of five
		t.Fatalf("status has %d images, want 6: %+v", len(want), st.Images)
	}
	do(t, ctx, "open the task",
		chromedp.Click(chromedp.CSS(row+` a`)),
		waitJS(fmt.Sprintf(`document.querySelectorAll('#image-grid img').length === %d && [...document.querySelectorAll('#image-grid img')].every(i => i.complete && i.naturalWidth > 0)`, len(want))),
		waitJS(`document.querySelectorAll('.sheet .tile').length > 0`))
	shown := eval[[]string](t, ctx, `[...document.querySelectorAll('#image-grid img')].map(i => i.src)`)
	if strings.Join(shown, " ") != strings.Join(want, " ") {
		t.Errorf("the page shows images\n%v\nwant\n%v", shown, want)
	}
	// The callbacks sent for it: queued and saved, delivered, the URL cut
	// to its host.
	do(t, ctx, "the callbacks", waitJS(`document.querySelectorAll('#callbacks tbody tr').length === 2 && !document.querySelector('#callbacks').innerText.includes('retrying')`))
	cbText := eval[string](t, ctx, `document.querySelector('#callbacks').innerText`)
	for _, want := range []string{"queued", "saved", "200", "delivered", hook + "/…"} {
		if !strings.Contains(cbText, want) {
			t.Errorf("callbacks table %q lacks %q", cbText, want)
		}
	}
	if strings.Contains(cbText, "secret-path") || strings.Contains(cbText, "sig=abc") {
		t.Errorf("callbacks table shows the callback URL's path: %q", cbText)
	}
	if tiles := eval[int](t, ctx, `document.querySelectorAll('.sheet .tile').length`); tiles != 10 { // a 10 s source, a tile every second
		t.Errorf("%d sprite tiles outlined, want 10", tiles)
	}
	// The metadata output is a link to ffprobe's JSON, not a player; each
	// image output's manifest is listed and read from its manifest_url.
	if n := eval[int](t, ctx, `document.querySelectorAll('.card.metadata').length`); n != 1 {
		t.Errorf("%d metadata cards, want 1", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.card.video video').length`); n != 0 {
		t.Errorf("%d players for a task without video outputs", n)
	}
	do(t, ctx, "the manifests", waitJS(`[...document.querySelectorAll('details pre.json')].filter(p => p.textContent.startsWith('{')).length >= 3`))
	manifestLinks := eval[[]string](t, ctx, `[...document.querySelectorAll('details summary a')].map(a => a.href)`)
	var wantManifests []string
	for _, im := range st.Images {
		if im.ManifestURL != "" && !slices.Contains(wantManifests, im.ManifestURL) {
			wantManifests = append(wantManifests, im.ManifestURL)
		}
	}
	if len(wantManifests) != 3 || strings.Join(manifestLinks, " ") != strings.Join(wantManifests, " ") {
		t.Errorf("manifests listed %v, want the status's manifest_url of each of the 3 image outputs %v", manifestLinks, wantManifests)
	}
	shownQuery := eval[string](t, ctx, `document.querySelector('#query-json').textContent`)
	if !strings.Contains(shownQuery, `"user_tag": "middle"`) || !strings.Contains(shownQuery, src) {
		t.Errorf("the query shown is not the one sent:\n%s", shownQuery)
	}
	var shownStatus status
	statusJSON := eval[string](t, ctx, `document.querySelector('#status-json').textContent`)
	if err := json.Unmarshal([]byte(statusJSON), &shownStatus); err != nil || shownStatus.Status != "completed" || len(shownStatus.Images) != len(st.Images) {
		t.Errorf("status shown = %+v, %v; want /v1/status's", shownStatus, err)
	}
	screenshot(t, ctx, "task")
}

// cue is the cue a VTT file gives for t, read with package vtt.
func cueAt(t *testing.T, vttURL string, at float64) (src, xywh string) {
	t.Helper()
	resp, err := http.Get(vttURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cues, err := vtt.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Duration(math.Round(at*1000)) * time.Millisecond
	for _, c := range cues {
		if c.Start <= d && d < c.End {
			ref, err := url.Parse(strings.SplitN(c.Text, "\n", 2)[0])
			if err != nil {
				t.Fatal(err)
			}
			base, _ := url.Parse(vttURL)
			u := base.ResolveReference(ref)
			xywh = strings.TrimPrefix(u.Fragment, "xywh=")
			u.Fragment = ""
			return u.String(), xywh
		}
	}
	t.Fatalf("no cue of %s covers %.3f s", vttURL, at)
	return "", ""
}

// TestConsoleScrub: moving the scrub position to t shows the image (the
// sprite tile) whose cue covers t, checked against the VTT thumbd made.
func TestConsoleScrub(t *testing.T) {
	ctx := browser(t)
	base := thumbd(t)
	src := sourceServer(t)
	token := startTask(t, base, "console-test-key-1", map[string]any{
		"source": src,
		"format": []any{map[string]any{"output": "thumbnails", "interval": "1.5", "width": 120, "sprite": "1", "columns": "3", "image_format": "jpg"}},
	})
	st := waitStatus(t, base, token)
	var vttURL string
	for _, im := range st.Images {
		if im.Kind == "vtt" {
			vttURL = im.URL
		}
	}
	if vttURL == "" {
		t.Fatalf("no VTT in %+v", st.Images)
	}
	do(t, ctx, "open the task page",
		chromedp.Navigate(base+"/console/#/tasks/"+token),
		waitJS(`document.querySelector('#scrub') && Number(document.querySelector('#scrub').max) > 0 && document.querySelector('#scrub-view').dataset.src`),
		// The page is laid out for good: the source video knows its size.
		waitJS(`document.querySelector('#source-video') && document.querySelector('#source-video').readyState >= 1`))

	const previewShown = `(() => { const v = document.querySelector('#scrub-view'), i = v.querySelector('img');
		return Number(v.dataset.t) === Number(document.querySelector('#scrub').value) && i && i.complete && i.naturalWidth > 0; })()`
	seen := map[string]bool{}
	for _, frac := range []float64{0.12, 0.5, 0.93} {
		// Click on the slider's track at frac of its width, as a user would.
		box := eval[[]float64](t, ctx, `(() => { const r = document.querySelector('#scrub').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
		x, y := box[0]+8+frac*(box[2]-16), box[1]+box[3]/2
		do(t, ctx, fmt.Sprintf("scrub to %.0f%%", 100*frac), chromedp.MouseClickXY(x, y), waitJS(previewShown))
		at := eval[float64](t, ctx, `Number(document.querySelector('#scrub').value)`)
		if math.Abs(at-frac*st.Duration) > 0.1*st.Duration {
			t.Fatalf("clicking at %.0f%% put the slider at %.3f s of %.3f s", 100*frac, at, st.Duration)
		}
		gotSrc := eval[string](t, ctx, `document.querySelector('#scrub-view').dataset.src`)
		gotXYWH := eval[string](t, ctx, `document.querySelector('#scrub-view').dataset.xywh`)
		wantSrc, wantXYWH := cueAt(t, vttURL, at)
		if gotSrc != wantSrc || gotXYWH != wantXYWH {
			t.Errorf("at %.3f s the preview shows %s #xywh=%s; the VTT says %s #xywh=%s", at, gotSrc, gotXYWH, wantSrc, wantXYWH)
		}
		seen[wantSrc+"#"+wantXYWH] = true
		t.Logf("at %.3f s: %s #xywh=%s", at, gotSrc, gotXYWH)
		if frac == 0.5 {
			screenshot(t, ctx, "scrub")
		}
	}
	if len(seen) != 3 {
		t.Errorf("the three positions map to %d distinct tiles, want 3: the check could not tell them apart", len(seen))
	}

	// The source is reachable from the browser: it plays with the VTT as
	// a metadata track, and the preview follows playback.
	do(t, ctx, "the source video",
		waitJS(`document.querySelector('#source-video') && document.querySelector('#source-video').readyState >= 1`))
	if n := eval[int](t, ctx, `document.querySelectorAll('#source-video track[kind=metadata]').length`); n != 1 {
		t.Errorf("%d metadata tracks on the source video, want 1", n)
	}
	do(t, ctx, "seek the video",
		js(`document.querySelector('#source-video').currentTime = 7.2`),
		waitJS(`Math.abs(Number(document.querySelector('#scrub').value) - 7.2) < 0.05 && Math.abs(Number(document.querySelector('#scrub-view').dataset.t) - 7.2) < 0.05`))
	gotSrc := eval[string](t, ctx, `document.querySelector('#scrub-view').dataset.src`)
	gotXYWH := eval[string](t, ctx, `document.querySelector('#scrub-view').dataset.xywh`)
	if wantSrc, wantXYWH := cueAt(t, vttURL, 7.2); gotSrc != wantSrc || gotXYWH != wantXYWH {
		t.Errorf("after seeking the video to 7.2 s the preview shows %s #xywh=%s; the VTT says %s #xywh=%s", gotSrc, gotXYWH, wantSrc, wantXYWH)
	}
}

// TestConsoleNewTaskUpload: a task started from the form with a file
// uploaded from the browser (TUS) completes, and its page opens.
func TestConsoleNewTaskUpload(t *testing.T) {
	ctx := browser(t)
	base := thumbd(t)
	abs, err := filepath.Abs(clip)
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "open the form",
		chromedp.Navigate(base+"/console/#/new"),
		waitJS(`document.querySelector('#query') && document.querySelector('#query').value.includes('"output": "thumbnail"')`))
	prefilled := eval[string](t, ctx, `document.querySelector('#query').value`)
	if !strings.Contains(prefilled, `"user_tag": "15_320x240"`) || !strings.Contains(prefilled, `"time": "0.15"`) {
		t.Errorf("the editor is not prefilled with the docs' query:\n%s", prefilled)
	}
	screenshot(t, ctx, "new")
	do(t, ctx, "fill in and start",
		// The sprite preset.
		chromedp.SetValue(chromedp.CSS(`#preset`), "1"),
		js(`document.querySelector('#preset').dispatchEvent(new Event('change'))`),
		chromedp.SetUploadFiles(chromedp.CSS(`#source-file`), []string{abs}),
		waitJS(`document.querySelector('#pick-file').checked`),
		chromedp.Click(chromedp.CSS(`#start`)),
		waitJS(`/^#\/tasks\/[0-9a-f]{32}$/.test(location.hash)`))
	token := strings.TrimPrefix(eval[string](t, ctx, `location.hash`), "#/tasks/")
	do(t, ctx, "the task completes on its page",
		waitJS(`document.querySelector('#task') && document.querySelector('#task').dataset.status === 'completed'`),
		waitJS(`document.querySelector('.sheet img') && document.querySelector('.sheet img').naturalWidth > 0`))
	if query := eval[string](t, ctx, `document.querySelector('#query-json').textContent`); !strings.Contains(query, `"source": "tus:`) {
		t.Errorf("the task's source is not the uploaded file:\n%s", query)
	}
	st := waitStatus(t, base, token)
	if st.Duration < 9.9 || st.Duration > 10.1 {
		t.Errorf("the uploaded source lasts %.3f s, want the clip's 10 s", st.Duration)
	}
	screenshot(t, ctx, "uploaded")
}

// TestConsoleNewTaskDefaults: the form as it opens (the docs' query on
// thumbd's own sample video) starts a task that completes, offline.
func TestConsoleNewTaskDefaults(t *testing.T) {
	ctx := browser(t)
	base := thumbd(t)
	do(t, ctx, "start a task with the form as it is",
		chromedp.Navigate(base+"/console/#/new"),
		waitJS(`document.querySelector('#query') && document.querySelector('#query').value.includes('"output": "thumbnail"')`),
		chromedp.Click(chromedp.CSS(`#start`)),
		waitJS(`/^#\/tasks\/[0-9a-f]{32}$/.test(location.hash)`),
		waitJS(`document.querySelector('#task') && ['completed', 'error'].includes(document.querySelector('#task').dataset.status)`))
	token := strings.TrimPrefix(eval[string](t, ctx, `location.hash`), "#/tasks/")
	st := waitStatus(t, base, token)
	if len(st.Images) != 2 || st.Images[0].Width != 320 || st.Images[0].Height != 240 {
		t.Errorf("images = %+v, want the docs' two 320x240 thumbnails", st.Images)
	}
	if src := eval[string](t, ctx, `document.querySelector('#query-json').textContent`); !strings.Contains(src, base+"/static/test_mini.mp4") {
		t.Errorf("the task's source is not thumbd's sample:\n%s", src)
	}
}

// TestConsoleAPIKeys: with API keys, the console asks for one and shows
// only the tasks created with it.
func TestConsoleAPIKeys(t *testing.T) {
	ctx := browser(t)
	keyA, keyB := "console-key-alice-01", "console-key-bob-0002"
	base := thumbd(t, keyA, keyB)
	src := sourceServer(t)
	query := map[string]any{"source": src, "format": []any{map[string]any{"output": "thumbnail", "time": "0.1", "width": 64}}}
	mine := startTask(t, base, keyA, query)
	theirs := startTask(t, base, keyB, query)
	do(t, ctx, "open the console",
		chromedp.Navigate(base+"/console/"),
		waitJS(`document.querySelector('#key-dialog').open`))
	screenshot(t, ctx, "key")
	do(t, ctx, "give a key",
		chromedp.SendKeys(chromedp.CSS(`#key-input`), keyA),
		chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)),
		waitJS(fmt.Sprintf(`!!document.querySelector('tr[data-token="%s"]')`, mine)))
	rows := eval[[]string](t, ctx, `[...document.querySelectorAll('tr[data-token]')].map(r => r.dataset.token)`)
	if len(rows) != 1 || rows[0] != mine {
		t.Errorf("with alice's key the list shows %v, want only %s (not bob's %s)", rows, mine, theirs)
	}
	do(t, ctx, "bob's task is not shown",
		chromedp.Navigate(base+"/console/#/tasks/"+theirs),
		waitJS(`document.querySelector('.error-box')`))
	if msg := eval[string](t, ctx, `document.querySelector('.error-box').textContent`); !strings.Contains(msg, "no such task") {
		t.Errorf("bob's task page says %q", msg)
	}
}
