package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/frametest"
)

// process is thumbd run as its real binary.
type process struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// buildThumbd builds the binary once per test.
func buildThumbd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "thumbd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var listenAddr = regexp.MustCompile(`msg="thumbd listening" addr=(\S+)`)

// startProcess runs the binary with env and waits until it listens.
func startProcess(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"THUMBD_ADDR=127.0.0.1:0", "THUMBD_WORKERS=1", "THUMBD_LOG_LEVEL=info", "THUMBD_ALLOW_PRIVATE_NETWORKS=1"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			t.Log("thumbd:", line)
			if m := listenAddr.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.done:
		t.Fatalf("thumbd exited before listening: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("thumbd did not listen within 20s")
	}
	return p
}

// kill9 kills the process with SIGKILL: no shutdown code runs.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("thumbd did not die")
	}
}

// waitHeld waits until the test-control plane reports the task held.
func waitHeld(t *testing.T, base, token string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var st struct {
			Held map[string]string `json:"held"`
		}
		post(t, base, "/_thumbd/state", nil, &st)
		if _, ok := st.Held[token]; ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("task %s was not held", token[:6])
}

// checkKeptImages checks that a completed task's images are all served,
// each a decodable image of the reported size showing the right frame.
func checkKeptImages(t *testing.T, st wireStatus, wantImages int) {
	t.Helper()
	if st.Status != "completed" || st.Percent != 100 {
		t.Fatalf("status %s %v%%", st.Status, st.Percent)
	}
	if len(st.Images) != wantImages {
		t.Fatalf("%d images, want %d (none twice, none half-written)", len(st.Images), wantImages)
	}
	seen := map[string]bool{}
	for _, im := range st.Images {
		if seen[im.Tag] {
			t.Errorf("tag %s twice", im.Tag)
		}
		seen[im.Tag] = true
		code, body := get(t, im.URL)
		if code != 200 {
			t.Errorf("%s: GET %s: %d", im.Tag, im.URL, code)
			continue
		}
		if im.Kind != "image" {
			continue
		}
		img, _, err := frametest.Decode(body)
		if err != nil {
			t.Errorf("%s: %v", im.Tag, err)
			continue
		}
		if img.Bounds().Dx() != im.Width || img.Bounds().Dy() != im.Height {
			t.Errorf("%s: %dx%d, reported %dx%d", im.Tag, img.Bounds().Dx(), img.Bounds().Dy(), im.Width, im.Height)
		}
		checkFrame(t, im.Tag, img, img.Bounds(), *im.RequestedTime, im.Time)
	}
}

// TestSIGKILLMidTask kills thumbd with SIGKILL while one task is held in
// encoding and another waits in the queue, then restarts it on the same
// data directory: both tasks complete with all their images, and a task
// that had completed before the kill is still readable with its files.
func TestSIGKILLMidTask(t *testing.T) {
	bin := buildThumbd(t)
	src := serveTestdata(t) + "/clip.mp4"
	data := t.TempDir()
	env := []string{"THUMBD_DATA_DIR=" + data, "THUMBD_TEST_API=1"}
	p := startProcess(t, bin, env...)

	done := startTask(t, p.base, thumbQuery(src, nil), `{"n":"before"}`)
	before := waitStatus(t, p.base, done, 30*time.Second, "completed", "error")
	checkKeptImages(t, before, 7) // 1 thumbnail + 5 series images + the VTT

	post(t, p.base, "/_thumbd/hold", url.Values{"state": {"encoding"}}, nil)
	running := startTask(t, p.base, thumbQuery(src, nil), "")
	waitHeld(t, p.base, running)
	queued := startTask(t, p.base, thumbQuery(src, nil), "") // one worker: it waits
	goneSrc := httptest.NewServer(http.FileServer(http.Dir("../../testdata")))
	gone := startTask(t, p.base, thumbQuery(goneSrc.URL+"/clip.mp4", nil), "") // its source goes away
	if st, _ := status(t, p.base, running); st.Status != "encoding" {
		t.Fatalf("held task is %s, want encoding", st.Status)
	}
	if st, _ := status(t, p.base, queued); st.Status != "queued" {
		t.Fatalf("second task is %s, want queued", st.Status)
	}
	p.kill9(t)
	goneSrc.Close()

	// Restarted without the test API: nothing holds the tasks now.
	p = startProcess(t, bin, "THUMBD_DATA_DIR="+data)
	for name, tok := range map[string]string{"interrupted": running, "queued": queued} {
		st := waitStatus(t, p.base, tok, 60*time.Second, "completed", "error")
		t.Run(name, func(t *testing.T) { checkKeptImages(t, st, 7) })
	}
	st := waitStatus(t, p.base, gone, 60*time.Second, "completed", "error")
	if st.Status != "error" || st.ErrorDescription == nil || !strings.Contains(*st.ErrorDescription, "source") {
		t.Errorf("the task whose source went away: %s %v", st.Status, st.ErrorDescription)
	} else {
		t.Logf("the task whose source went away: %s", *st.ErrorDescription)
	}
	after, _ := status(t, p.base, done)
	if after.Status != "completed" || len(after.Images) != len(before.Images) {
		t.Fatalf("the task finished before the kill reads %s with %d images", after.Status, len(after.Images))
	}
	checkKeptImages(t, after, 7)
	// The restarted process shuts down cleanly on SIGTERM.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("SIGTERM: thumbd exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("thumbd did not exit on SIGTERM")
	}
}

// TestShutdownKeepsTaskQueued stops thumbd while a task runs past the
// shutdown timeout: the task is stopped, stays queued without the images
// of the interrupted run, and completes when thumbd starts again.
func TestShutdownKeepsTaskQueued(t *testing.T) {
	src := serveTestdata(t) + "/clip.mp4"
	cfg := testConfig(t, func(c *app.Config) { c.TestAPI = true; c.ShutdownTimeout = 300 * time.Millisecond })
	th := runThumbd(t, cfg)
	post(t, th.base, "/_thumbd/hold", url.Values{"state": {"saving"}}, nil)
	token := startTask(t, th.base, thumbQuery(src, nil), "")
	waitHeld(t, th.base, token)
	began := time.Now()
	if err := th.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 300*time.Millisecond || d > 10*time.Second {
		t.Errorf("shutdown took %v, want the 300ms timeout and a little more", d)
	}
	cfg.TestAPI = false
	th = runThumbd(t, cfg)
	checkKeptImages(t, waitStatus(t, th.base, token, 30*time.Second, "completed", "error"), 7)
}

// TestShutdownLetsTaskFinish stops thumbd while a task runs, with time
// enough: the task completes before thumbd exits.
func TestShutdownLetsTaskFinish(t *testing.T) {
	// A slow source: every request waits 300ms, so the task takes a while.
	files := http.FileServer(http.Dir("../../testdata"))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		files.ServeHTTP(w, r)
	}))
	defer slow.Close()
	cfg := testConfig(t, func(c *app.Config) { c.ShutdownTimeout = 30 * time.Second })
	th := runThumbd(t, cfg)
	token := startTask(t, th.base, thumbQuery(slow.URL+"/clip.mp4", nil), "")
	waitStatus(t, th.base, token, 10*time.Second, "downloading", "encoding")
	began := time.Now()
	if err := th.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("shutdown waited %v for the task", time.Since(began))
	th = runThumbd(t, cfg)
	st, _ := status(t, th.base, token)
	if st.Status != "completed" {
		t.Fatalf("after a shutdown with time to spare the task is %s, want completed", st.Status)
	}
	checkKeptImages(t, st, 7)
}

// TestTaskTimeout checks that a task running past THUMBD_TASK_TIMEOUT ends
// in error saying so, with either store. The limit leaves the task after
// the reset room to finish on a loaded machine.
func TestTaskTimeout(t *testing.T) {
	src := serveTestdata(t) + "/clip.mp4"
	for _, store := range []string{"sqlite", "memory"} {
		t.Run(store, func(t *testing.T) {
			th := runThumbd(t, testConfig(t, func(c *app.Config) { c.Store = store; c.TestAPI = true; c.TaskTimeout = 8 * time.Second }))
			post(t, th.base, "/_thumbd/hold", url.Values{"state": {"encoding"}}, nil)
			token := startTask(t, th.base, thumbQuery(src, nil), "")
			st := waitStatus(t, th.base, token, 20*time.Second, "completed", "error")
			if st.Status != "error" || st.ErrorDescription == nil || !strings.Contains(*st.ErrorDescription, "time limit") {
				t.Errorf("status %s %v, want an error about the time limit", st.Status, st.ErrorDescription)
			}
			post(t, th.base, "/_thumbd/reset", nil, nil)
			next := startTask(t, th.base, thumbQuery(src, nil), "")
			checkKeptImages(t, waitStatus(t, th.base, next, 20*time.Second, "completed", "error"), 7)
		})
	}
}

// TestRetention checks that a finished task and the files thumbd keeps for
// it are forgotten after THUMBD_RETENTION.
func TestRetention(t *testing.T) {
	src := serveTestdata(t) + "/clip.mp4"
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.Retention = time.Second }))
	token := startTask(t, th.base, thumbQuery(src, nil), "")
	st := waitStatus(t, th.base, token, 30*time.Second, "completed")
	file := st.Images[0].URL
	if code, _ := get(t, file); code != 200 {
		t.Fatalf("GET %s: %d", file, code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := status(t, th.base, token)
		code, _ := get(t, file)
		if st.Status == "error" && code == 404 {
			if !strings.Contains(*st.ErrorDescription, "not found") {
				t.Errorf("expired task: %s", *st.ErrorDescription)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the task is %s and its file answers %d", st.Status, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDatabaseDeletedWhileRunning deletes the SQLite database under a
// running thumbd: /readyz turns 503 saying so, and thumbd logs an error.
func TestDatabaseDeletedWhileRunning(t *testing.T) {
	cfg := testConfig(t, nil)
	logs := &syncBuffer{}
	th := runThumbdLog(t, cfg, logs)
	code, body := get(t, th.base+"/readyz")
	if code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if err := os.Remove(filepath.Join(cfg.DataDir, "thumbd.db")); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, th.base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "thumbd.db was deleted while thumbd runs") {
		t.Errorf("/readyz after the database was deleted: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `level=ERROR msg="the task database is unusable"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRemovedKeyEndsItsTokens gets a token for each of two keys, restarts
// thumbd with one key removed from THUMBD_API_KEYS, and checks that the
// removed key's token no longer creates tasks while the other's still
// does.
func TestRemovedKeyEndsItsTokens(t *testing.T) {
	const kept, removed = "kept-key-000000001", "removed-key-00000001"
	dir := t.TempDir()
	cfg := testConfig(t, func(c *app.Config) { c.DataDir = dir; c.APIKeys = []string{kept, removed} })
	th := runThumbd(t, cfg)
	tokens := map[string]string{}
	for _, k := range []string{kept, removed} {
		var r struct{ Token string }
		post(t, th.base, "/v1/access_token", url.Values{"api_key": {k}}, &r)
		tokens[k] = r.Token
	}
	if err := th.stop(); err != nil {
		t.Fatal(err)
	}

	cfg.APIKeys = []string{kept}
	th = runThumbd(t, cfg)
	var reply struct {
		Error     int    `json:"error"`
		Message   string `json:"message"`
		TaskToken string `json:"task_token"`
	}
	raw := postRaw(t, th.base, "/v1/create_task", url.Values{"token": {tokens[removed]}})
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Error != 5 || reply.Message != "Token not found" || reply.TaskToken != "" {
		t.Errorf("create_task with the removed key's token: %s", raw)
	}
	raw = postRaw(t, th.base, "/v1/access_token", url.Values{"api_key": {removed}})
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Error == 0 {
		t.Errorf("access_token with the removed key: %s", raw)
	}
	var ct struct {
		TaskToken string `json:"task_token"`
	}
	post(t, th.base, "/v1/create_task", url.Values{"token": {tokens[kept]}}, &ct)
	if ct.TaskToken == "" {
		t.Error("the kept key's token created no task")
	}
}
