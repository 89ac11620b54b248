// Command endless measures thumbd's memory while its tasks read sources
// that never end: an origin on loopback streams a short MPEG-TS clip over
// and over, as fast as loopback carries it, without a Content-Length and
// ignoring ranges, the way a live stream or a hostile server does.
//
//	go run ./bench/endless                 # two tasks, 90 s at most
//	go run ./bench/endless -tasks 4 -for 3m
//
// It builds thumbd (or runs -thumbd), starts it on a fresh data directory
// with private sources allowed (the origin is on loopback), samples the
// resident memory (VmRSS) of the thumbd process itself every 100 ms (its
// ffmpeg children are separate processes and are not counted), and prints
// the idle figure, the peak while the tasks run, the figure once they have
// ended, how the tasks ended, and whether the peak stayed within -budget
// above idle. It exits 1 when it did not.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("thumbd", "", "thumbd binary to run (default: go build ./cmd/thumbd)")
	tasks := flag.Int("tasks", 2, "tasks reading endless sources at once")
	limit := flag.Duration("for", 90*time.Second, "how long the tasks may run before the measurement stops")
	budget := flag.Int64("budget", 100, "MiB the peak may be above idle")
	kind := flag.String("kind", "ts", "what the origin streams: ts (a valid MPEG-TS clip, looped) or noise (random bytes)")
	extra := flag.String("env", "", "comma-separated extra NAME=VALUE settings for thumbd")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, *bin, *tasks, *limit, *budget<<20, *kind, *extra)
	if err != nil {
		fmt.Fprintln(os.Stderr, "endless:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, bin string, tasks int, limit time.Duration, budget int64, kind, extra string) (bool, error) {
	dir, err := os.MkdirTemp("", "thumbd-endless-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "thumbd")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/thumbd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return false, fmt.Errorf("building thumbd: %w", err)
		}
	}
	var loop []byte
	switch kind {
	case "ts":
		clip := filepath.Join(dir, "loop.ts")
		gen := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "mpegts", clip)
		if out, err := gen.CombinedOutput(); err != nil {
			return false, fmt.Errorf("making the clip: %v: %s", err, out)
		}
		if loop, err = os.ReadFile(clip); err != nil {
			return false, err
		}
	case "noise":
		loop = make([]byte, 1<<20)
		for i := range loop {
			loop[i] = byte(i*7919 + i>>8)
		}
	default:
		return false, fmt.Errorf("-kind must be ts or noise, got %q", kind)
	}

	// The origin: 200, no length, the clip for ever.
	var served atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp2t")
		w.WriteHeader(http.StatusOK)
		for r.Context().Err() == nil {
			n, err := w.Write(loop)
			served.Add(int64(n))
			if err != nil {
				return
			}
		}
	})}
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	go origin.Serve(oln)
	defer origin.Close()

	// thumbd.
	addr, err := freeAddr()
	if err != nil {
		return false, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"THUMBD_ADDR="+addr,
		"THUMBD_DATA_DIR="+filepath.Join(dir, "data"),
		"THUMBD_ALLOW_PRIVATE_NETWORKS=true", // the origin is on loopback
		"THUMBD_WORKERS="+strconv.Itoa(max(tasks, 2)),
		"THUMBD_LOG_LEVEL=warn",
	)
	for _, kv := range strings.Split(extra, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "thumbd.log"))
	if err != nil {
		return false, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return false, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base := "http://" + addr
	if err := waitReady(ctx, base); err != nil {
		return false, err
	}

	s := &sampler{pid: cmd.Process.Pid}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.run(sctx, 100*time.Millisecond)
	time.Sleep(2 * time.Second)
	idle := s.peak()

	src := "http://" + oln.Addr().String() + "/live/stream.ts"
	var tokens []string
	for range tasks {
		tok, err := startTask(base, src)
		if err != nil {
			return false, err
		}
		tokens = append(tokens, tok)
	}
	s.reset()
	start := time.Now()
	var ends []string
	for {
		ends = ends[:0]
		for _, tok := range tokens {
			st, desc, err := status(base, tok)
			if err != nil {
				return false, err
			}
			if st == "completed" || st == "error" {
				ends = append(ends, st+": "+desc)
			}
		}
		if len(ends) == len(tokens) || time.Since(start) > limit || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	ran := time.Since(start)
	peak := s.peak()
	time.Sleep(3 * time.Second)
	after := s.last()

	fmt.Printf("endless sources (%s): %d tasks, %.0f s, origin sent %.1f GiB\n", kind, tasks, ran.Seconds(), float64(served.Load())/(1<<30))
	fmt.Printf("thumbd RSS: idle %s, peak %s (+%s), 3 s after %s\n", mib(idle), mib(peak), mib(peak-idle), mib(after))
	for i, e := range ends {
		fmt.Printf("task %d: %s\n", i+1, e)
	}
	if len(ends) < len(tokens) {
		fmt.Printf("%d of %d tasks still running after %v\n", len(tokens)-len(ends), len(tokens), limit)
	}
	ok := peak-idle <= budget
	verdict := "within"
	if !ok {
		verdict = "OVER"
	}
	fmt.Printf("peak above idle: %s, %s the budget of %s (ratio %.2f)\n", mib(peak-idle), verdict, mib(budget), float64(peak-idle)/float64(budget))
	return ok, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// sampler reads a process's VmRSS.
type sampler struct {
	pid int
	mu  sync.Mutex
	max int64
	cur int64
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := rss(s.pid); err == nil {
			s.mu.Lock()
			s.cur = n
			s.max = max(s.max, n)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) peak() int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.max }
func (s *sampler) last() int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.cur }
func (s *sampler) reset()      { s.mu.Lock(); defer s.mu.Unlock(); s.max = s.cur }

// rss returns the resident memory of pid in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("thumbd did not become ready")
}

func call(base, path string, form url.Values, v any) error {
	resp, err := http.PostForm(base+path, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v: %s", path, err, b)
	}
	if env.Error != 0 {
		return fmt.Errorf("%s: error %d: %s", path, env.Error, env.Message)
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

func startTask(base, src string) (string, error) {
	var at struct{ Token string }
	if err := call(base, "/v1/access_token", url.Values{"api_key": {"endless-bench-key-01"}}, &at); err != nil {
		return "", err
	}
	var ct struct {
		TaskToken string `json:"task_token"`
	}
	if err := call(base, "/v1/create_task", url.Values{"token": {at.Token}}, &ct); err != nil {
		return "", err
	}
	q, _ := json.Marshal(map[string]any{"query": map[string]any{"source": src, "format": []any{
		map[string]any{"output": "thumbnail", "time": "0.5", "width": 160},
		map[string]any{"output": "thumbnails", "interval": 10, "width": 160, "image_format": "jpg"},
	}}})
	if err := call(base, "/v1/start_encode2", url.Values{"task_token": {ct.TaskToken}, "query": {string(q)}}, nil); err != nil {
		return "", err
	}
	return ct.TaskToken, nil
}

func status(base, token string) (string, string, error) {
	var r struct {
		Statuses map[string]struct {
			Status           string  `json:"status"`
			ErrorDescription *string `json:"error_description"`
		} `json:"statuses"`
	}
	if err := call(base, "/v1/status", url.Values{"task_tokens[]": {token}}, &r); err != nil {
		return "", "", err
	}
	st := r.Statuses[token]
	desc := ""
	if st.ErrorDescription != nil {
		desc = *st.ErrorDescription
	}
	return st.Status, desc, nil
}
