package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/frametest"
)

// cases are the API cases, in the order they run.
var cases = []struct {
	name, desc string
}{
	{"single", "one thumbnail of the 10 s clip, alone: start_encode2 to `completed`, polling every 10 ms"},
	{"burst", "100 single-thumbnail tasks of the 10 s clip, a different time each, started at once"},
	{"status", "/v1/status throughput at 50 connections (vegeta), one token and ten"},
	{"norange", "60 thumbnails of the 10-minute source from an origin that ignores Range"},
}

// clipFile is the 10 s 640x360 25 fps clip (GOP 2 s) with its frame
// number painted in its top 40 rows, 8 bits.
const clipFile = "testdata/clip.mp4"

// longName is the long-source benchmark's 10-minute source (bench/sources.go),
// the norange case's file.
const longName = "tenmin1080"

// longSource returns the 10-minute source from the cache, asking the
// long-source benchmark (go run ./bench) to generate it when it is not
// there.
func longSource(ctx context.Context, cache string) (string, error) {
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(cache, longName+"-*.mp4"))
		for _, f := range m {
			if !strings.Contains(f, ".part.") {
				return f
			}
		}
		return ""
	}
	if f := find(); f != "" {
		return f, nil
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./bench", "-cache", cache, "-sources", longName, "-methods", "none")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("generating %s: %w", longName, err)
	}
	if f := find(); f != "" {
		return f, nil
	}
	return "", fmt.Errorf("%s is not in %s", longName, cache)
}

const clipFPS = 25.0

// apiBench holds what the cases share: a thumbd, two origins, a client.
type apiBench struct {
	cache    string
	base     string // thumbd
	origin   string // serves cache files and the clip with Range
	noRange  string // serves the same, ignoring Range
	client   *http.Client
	token    string
	stop     func()
	done     []string // completed task tokens, for the status case
	lines    []string // the table's rows
	findings []string // targets met or missed
}

func runCases(ctx context.Context, cache, only string, report *strings.Builder) error {
	var want []string
	for _, c := range cases {
		if only == "all" || slices.Contains(strings.Split(only, ","), c.name) {
			want = append(want, c.name)
		}
	}
	if len(want) == 0 {
		return nil
	}
	if slices.Contains(want, "status") && !slices.Contains(want, "burst") {
		want = append([]string{"burst"}, want...) // its tasks are what status reads
	}
	b, err := startAPIBench(ctx, cache)
	if err != nil {
		return err
	}
	defer b.stop()
	fmt.Fprintf(report, "**API cases** (thumbd through HTTP on 127.0.0.1, SQLite store, `THUMBD_WORKERS=2`; load average before: %s).\n\n", loadAvg())
	for _, c := range cases {
		if !slices.Contains(want, c.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "case %s ...\n", c.name)
		var err error
		switch c.name {
		case "single":
			err = b.single(ctx)
		case "burst":
			err = b.burst(ctx)
		case "status":
			err = b.status(ctx)
		case "norange":
			err = b.norange(ctx)
		}
		if err != nil {
			return fmt.Errorf("case %s: %w", c.name, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	report.WriteString("| case | thumbd | baseline | thumbd ÷ baseline | notes |\n|---|---:|---:|---:|---|\n")
	for _, l := range b.lines {
		report.WriteString(l + "\n")
	}
	report.WriteString("\n")
	for _, f := range b.findings {
		report.WriteString("- " + f + "\n")
	}
	fmt.Fprintf(report, "\nLoad average after: %s.\n\n", loadAvg())
	return nil
}

func startAPIBench(ctx context.Context, cache string) (*apiBench, error) {
	abs, err := filepath.Abs(cache)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	clip, err := filepath.Abs(clipFile)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/cache/", http.StripPrefix("/cache/", http.FileServer(http.Dir(abs))))
	mux.HandleFunc("/clip.mp4", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, clip) })
	origin, stopOrigin, err := serve(mux)
	if err != nil {
		return nil, err
	}
	noRange, stopNoRange, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A plain static server without Range support: the whole file,
		// with its length and modification time.
		f, err := os.Open(filepath.Join(abs, filepath.Base(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		w.Header().Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "video/mp4")
		io.Copy(w, f)
	}))
	if err != nil {
		stopOrigin()
		return nil, err
	}
	data, err := os.MkdirTemp("", "thumbd-bench-api-")
	if err != nil {
		return nil, err
	}
	cfg, err := app.LoadConfig(nil, func(k string) string {
		return map[string]string{
			"THUMBD_ADDR": "127.0.0.1:0", "THUMBD_DATA_DIR": data, "THUMBD_WORKERS": "2",
			"THUMBD_ALLOW_PRIVATE_NETWORKS": "1", "THUMBD_SOURCE_DIRS": abs, "THUMBD_LOG_LEVEL": "error",
		}[k]
	}, io.Discard)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(sctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), listening)
	}()
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("thumbd did not start: %v", err)
	}
	b := &apiBench{cache: abs, base: "http://" + addr, origin: origin, noRange: noRange,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}}
	b.stop = func() {
		cancel()
		<-done
		stopOrigin()
		stopNoRange()
		os.RemoveAll(data)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := b.call("/v1/access_token", url.Values{"api_key": {"bench-api-key-0001"}}, &tok); err != nil {
		b.stop()
		return nil, err
	}
	b.token = tok.Token
	return b, nil
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// call POSTs a form to thumbd and decodes its reply, failing on a
// non-zero "error".
func (b *apiBench) call(path string, form url.Values, v any) error {
	resp, err := b.client.PostForm(b.base+path, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var e struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("%s: %s", path, body)
	}
	if e.Error != 0 {
		return fmt.Errorf("%s: error %d: %s", path, e.Error, e.Message)
	}
	return json.Unmarshal(body, v)
}

func (b *apiBench) createTask() (string, error) {
	var ct struct {
		TaskToken string `json:"task_token"`
	}
	err := b.call("/v1/create_task", url.Values{"token": {b.token}}, &ct)
	return ct.TaskToken, err
}

func (b *apiBench) start(task, query string) error {
	var v struct{}
	return b.call("/v1/start_encode2", url.Values{"task_token": {task}, "query": {query}}, &v)
}

type taskStatus struct {
	Status           string  `json:"status"`
	Error            int     `json:"error"`
	ErrorDescription *string `json:"error_description"`
	Images           []struct {
		URL  string   `json:"url"`
		Time *float64 `json:"time"`
	} `json:"images"`
}

func (b *apiBench) statuses(tokens []string) (map[string]taskStatus, error) {
	var r struct {
		Statuses map[string]taskStatus `json:"statuses"`
	}
	err := b.call("/v1/status", url.Values{"task_tokens": {strings.Join(tokens, ",")}}, &r)
	return r.Statuses, err
}

// thumbQuery is a query for one full-size JPEG thumbnail at t seconds.
func thumbQuery(src string, t float64) string {
	return fmt.Sprintf(`{"query":{"source":%q,"format":[{"output":"thumbnail","start_time":"%.3f","image_format":"jpg"}]}}`, src, t)
}

// checkClipImage fetches a thumbnail of the clip and reads its frame
// number: it must be the first frame at or after t.
func (b *apiBench) checkClipImage(u string, t float64) error {
	resp, err := b.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	img, _, err := frametest.Decode(data)
	if err != nil {
		return err
	}
	n, err := frametest.ClipBand(img.Bounds()).FrameNumber(img)
	if err != nil {
		return err
	}
	if want := int(math.Ceil(t*clipFPS - 1e-6)); n != want {
		return fmt.Errorf("the thumbnail at %.3fs shows frame %d, want %d", t, n, want)
	}
	return nil
}

// runTask starts one task and polls it every poll until it ends; it
// returns the time from the start call to the status that said
// completed.
func (b *apiBench) runTask(query string, poll time.Duration) (time.Duration, taskStatus, error) {
	task, err := b.createTask()
	if err != nil {
		return 0, taskStatus{}, err
	}
	began := time.Now()
	if err := b.start(task, query); err != nil {
		return 0, taskStatus{}, err
	}
	for {
		st, err := b.statuses([]string{task})
		if err != nil {
			return 0, taskStatus{}, err
		}
		s := st[task]
		switch s.Status {
		case "completed":
			b.done = append(b.done, task)
			return time.Since(began), s, nil
		case "error":
			d := ""
			if s.ErrorDescription != nil {
				d = *s.ErrorDescription
			}
			return 0, s, fmt.Errorf("task failed: %s", d)
		}
		if time.Since(began) > 5*time.Minute {
			return 0, s, fmt.Errorf("task still %s after 5 minutes", s.Status)
		}
		time.Sleep(poll)
	}
}

// plainThumb is the baseline for one thumbnail: ffmpeg alone on the
// local file.
func plainThumb(ctx context.Context, src string, t float64, out string) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-ss", strconv.FormatFloat(t, 'f', 3, 64), "-i", src, "-frames:v", "1", out)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func (b *apiBench) row(name string, thumbd, base time.Duration, baseName, notes string) {
	b.lines = append(b.lines, fmt.Sprintf("| %s | %s | %s (%s) | %.2f× | %s |", name, fmtDur(thumbd), fmtDur(base), baseName,
		thumbd.Seconds()/base.Seconds(), notes))
}

func (b *apiBench) target(name string, ok bool, got string) {
	mark := "met"
	if !ok {
		mark = "**missed**"
	}
	b.findings = append(b.findings, fmt.Sprintf("%s: %s (%s)", name, mark, got))
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// single: one thumbnail alone, first of a source thumbd has not seen
// (cold) and of one it has (warm), against one plain ffmpeg process.
func (b *apiBench) single(ctx context.Context) error {
	clip, _ := filepath.Abs(clipFile)
	out, err := os.MkdirTemp("", "thumbd-bench-single-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	const runs = 10
	var plain, cold, warm []time.Duration
	for i := range runs {
		t := 0.5 + float64(i)*0.9
		began := time.Now()
		if err := plainThumb(ctx, clip, t, filepath.Join(out, "p.jpg")); err != nil {
			return err
		}
		plain = append(plain, time.Since(began))
		// A query string thumbd has not seen: a new source to it.
		d, st, err := b.runTask(thumbQuery(fmt.Sprintf("%s/clip.mp4?cold=%d", b.origin, i), t), 10*time.Millisecond)
		if err != nil {
			return err
		}
		cold = append(cold, d)
		if err := b.checkClipImage(st.Images[0].URL, t); err != nil {
			return err
		}
		d, st, err = b.runTask(thumbQuery(b.origin+"/clip.mp4", t), 10*time.Millisecond)
		if err != nil {
			return err
		}
		warm = append(warm, d)
		if err := b.checkClipImage(st.Images[0].URL, t); err != nil {
			return err
		}
	}
	p, c, w := median(plain), median(cold), median(warm)
	b.row("single thumbnail, source seen before (median of 10)", w, p, "one `ffmpeg -ss T -i clip -frames:v 1`", "start_encode2 → completed, polled every 10 ms")
	b.row("single thumbnail, new source (median of 10)", c, p, "one `ffmpeg -ss T -i clip -frames:v 1`", "probe included")
	b.target("one thumbnail alone under 150 ms (source seen before)", w < 150*time.Millisecond, fmtDur(w))
	b.findings = append(b.findings, fmt.Sprintf("one thumbnail of a source never seen before: %s", fmtDur(c)))
	return nil
}

// burst: 100 tasks started at once, against 100 plain ffmpeg processes
// two at a time.
func (b *apiBench) burst(ctx context.Context) error {
	clip, _ := filepath.Abs(clipFile)
	const n = 100
	times := make([]float64, n)
	for i := range times {
		times[i] = math.Round(float64(i)*9.9/n*1000) / 1000
	}
	out, err := os.MkdirTemp("", "thumbd-bench-burst-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	began := time.Now()
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	for i, t := range times {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := plainThumb(ctx, clip, t, filepath.Join(out, fmt.Sprintf("%03d.jpg", i))); err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	plain := time.Since(began)
	if perr != nil {
		return perr
	}

	tasks := make([]string, n)
	for i := range tasks {
		if tasks[i], err = b.createTask(); err != nil {
			return err
		}
	}
	src := b.origin + "/clip.mp4"
	started := make([]time.Time, n)
	ended := make([]time.Duration, n)
	began = time.Now()
	errs := make([]error, n)
	for i := range tasks {
		wg.Go(func() {
			started[i] = time.Now()
			errs[i] = b.start(tasks[i], thumbQuery(src, times[i]))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// One poller asks for every unfinished task every 50 ms.
	left := map[string]int{}
	for i, t := range tasks {
		left[t] = i
	}
	failed := 0
	images := map[int]string{}
	for len(left) > 0 {
		var ask []string
		for t := range left {
			ask = append(ask, t)
		}
		st, err := b.statuses(ask)
		if err != nil {
			return err
		}
		now := time.Now()
		for t, s := range st {
			i := left[t]
			switch s.Status {
			case "completed":
				ended[i] = now.Sub(started[i])
				images[i] = s.Images[0].URL
				delete(left, t)
			case "error":
				failed++
				ended[i] = now.Sub(started[i])
				delete(left, t)
			}
		}
		if time.Since(began) > 10*time.Minute {
			return fmt.Errorf("%d tasks unfinished after 10 minutes", len(left))
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(began)
	for i, u := range images {
		if err := b.checkClipImage(u, times[i]); err != nil {
			return err
		}
	}
	b.done = append(b.done, tasks...)
	med := median(ended)
	b.row("burst of 100 single thumbnails", wall, plain, "100 plain ffmpeg, 2 at a time",
		fmt.Sprintf("%d errors; latency median %s, max %s; every image's frame checked", failed, fmtDur(med), fmtDur(slices.Max(ended))))
	r := wall.Seconds() / plain.Seconds()
	b.target("burst within 1.5× of plain ffmpeg", r <= 1.5 && failed == 0, fmt.Sprintf("%.2f×, %d errors", r, failed))
	b.target("burst median latency under 3 s", med < 3*time.Second, fmtDur(med))
	return nil
}

// vegetaReport is what `vegeta report -type=json` says.
type vegetaReport struct {
	Throughput float64 `json:"throughput"`
	Success    float64 `json:"success"`
	Latencies  struct {
		P99 time.Duration `json:"99th"`
	} `json:"latencies"`
	Requests int `json:"requests"`
}

// attack runs vegeta at full speed over 50 connections for 5 s.
func attack(ctx context.Context, target string) (vegetaReport, error) {
	var r vegetaReport
	atk := exec.CommandContext(ctx, "vegeta", "attack", "-rate=0", "-max-workers=50", "-workers=50", "-connections=50",
		"-duration=5s", "-format=json")
	atk.Stdin = strings.NewReader(target + "\n")
	res, err := atk.Output()
	if err != nil {
		return r, fmt.Errorf("vegeta attack: %w", err)
	}
	rep := exec.CommandContext(ctx, "vegeta", "report", "-type=json")
	rep.Stdin = bytes.NewReader(res)
	out, err := rep.Output()
	if err != nil {
		return r, fmt.Errorf("vegeta report: %w", err)
	}
	return r, json.Unmarshal(out, &r)
}

// vegetaTarget is one request in vegeta's JSON target format.
func vegetaTarget(method, u, body string) string {
	t := map[string]any{"method": method, "url": u}
	if body != "" {
		t["body"] = []byte(body) // base64, as vegeta wants it
		t["header"] = map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}
	}
	b, _ := json.Marshal(t)
	return string(b)
}

// status: /v1/status on completed tasks, against /healthz (the server's
// floor: routing, one small JSON reply) with the same tool.
func (b *apiBench) status(ctx context.Context) error {
	if _, err := exec.LookPath("vegeta"); err != nil {
		return fmt.Errorf("vegeta is not installed (scripts/bench.sh installs it): %w", err)
	}
	if len(b.done) < 10 {
		return fmt.Errorf("need 10 completed tasks, have %d", len(b.done))
	}
	health, err := attack(ctx, vegetaTarget("GET", b.base+"/healthz", ""))
	if err != nil {
		return err
	}
	for _, n := range []int{1, 10} {
		r, err := attack(ctx, vegetaTarget("POST", b.base+"/v1/status", "task_tokens="+strings.Join(b.done[:n], ",")))
		if err != nil {
			return err
		}
		want := map[int]float64{1: 10000, 10: 4000}[n]
		b.lines = append(b.lines, fmt.Sprintf("| /v1/status, %d token(s), 50 connections | %.0f req/s | %.0f req/s (GET /healthz) | %.2f× | p99 %s, success %.1f%% (healthz p99 %s) |",
			n, r.Throughput, health.Throughput, r.Throughput/health.Throughput, fmtDur(r.Latencies.P99), 100*r.Success, fmtDur(health.Latencies.P99)))
		b.target(fmt.Sprintf("/v1/status with %d token(s) ≥ %.0f req/s, p99 under 20 ms", n, want),
			r.Throughput >= want && r.Latencies.P99 < 20*time.Millisecond && r.Success == 1,
			fmt.Sprintf("%.0f req/s, p99 %s", r.Throughput, fmtDur(r.Latencies.P99)))
	}
	return nil
}

// norange: a series of thumbnails of the 10-minute source read from an
// origin that ignores Range, against one download of the file plus the
// same task on the local file.
func (b *apiBench) norange(ctx context.Context) error {
	file, err := longSource(ctx, b.cache)
	if err != nil {
		return err
	}
	name := filepath.Base(file)
	began := time.Now()
	resp, err := b.client.Get(b.noRange + "/" + name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "thumbd-bench-download-")
	if err != nil {
		resp.Body.Close()
		return err
	}
	_, err = io.Copy(tmp, resp.Body)
	resp.Body.Close()
	tmp.Close()
	os.Remove(tmp.Name())
	if err != nil {
		return err
	}
	download := time.Since(began)
	query := func(u string) string {
		return fmt.Sprintf(`{"query":{"source":%q,"format":[{"output":"thumbnails","interval":"10","width":"320","image_format":"jpg"}]}}`, u)
	}
	local, _, err := b.runTask(query("file://"+file), 50*time.Millisecond)
	if err != nil {
		return err
	}
	ranged, _, err := b.runTask(query(b.origin+"/cache/"+name), 50*time.Millisecond)
	if err != nil {
		return err
	}
	nr, _, err := b.runTask(query(b.noRange+"/"+name), 50*time.Millisecond)
	if err != nil {
		return err
	}
	base := download + local
	b.row("60 thumbnails, origin without Range", nr, base, "one download + the task on the local file",
		fmt.Sprintf("download %s, local file %s, origin with Range %s", fmtDur(download), fmtDur(local), fmtDur(ranged)))
	b.target("no-Range origin never slower than one download plus the local-file time", nr <= base,
		fmt.Sprintf("%s against %s", fmtDur(nr), fmtDur(base)))
	return nil
}
