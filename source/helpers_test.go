package source

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage"
)

// origin is a test web server that counts what it serves.
type origin struct {
	*httptest.Server
	bytes    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	ranges   []string
}

// startOrigin serves h on loopback, counting body bytes and requests.
func startOrigin(t *testing.T, h http.Handler) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		o.ranges = append(o.ranges, r.Header.Get("Range"))
		o.mu.Unlock()
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &o.bytes}, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// serveFiles serves dir with range requests, as a plain web server does.
func serveFiles(dir string) http.Handler { return http.FileServer(http.Dir(dir)) }

// allowAll lets a test's sources reach its origins on loopback.
var allowAll = netguard.New(netguard.Policy{AllowPrivate: true})

// startGateway starts a Gateway for the test. Its sources reach only public
// addresses unless cfg.Guard allows more.
func startGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runTask runs one task with a real engine reading through g, and returns
// its final snapshot.
func runTask(t *testing.T, g *Gateway, spec engine.Spec, timeout time.Duration) engine.Snapshot {
	t.Helper()
	files, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Config{Workers: 2, WorkDir: t.TempDir(), Files: files, Sources: g, TaskTimeout: timeout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	sess, _, err := eng.NewSession(ctx, "source-test-key-01")
	if err != nil {
		t.Fatal(err)
	}
	task, err := eng.CreateTask(ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Outputs == nil {
		half := 0.5
		spec.Outputs = []engine.Output{{Kind: engine.KindThumbnail, Time: &half, Width: 160, Format: engine.JPEG}}
	}
	if err := eng.Start(ctx, task, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		snap, err := eng.Status(ctx, task)
		if err != nil {
			t.Fatal(err)
		}
		if snap.State.Done() {
			return snap
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the task did not end within 60s")
	return engine.Snapshot{}
}

// makeMedia writes a file made by ffmpeg with args (output last) into dir,
// once per test binary run.
func makeMedia(t testing.TB, name string, args ...string) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "thumbd-source-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
		return p
	}
	tmp := p + ".tmp" + filepath.Ext(name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-v", "error", "-y"}, args...), tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// clip is the 10 s test clip of the repository.
func clip(t testing.TB) string {
	p, err := filepath.Abs("../testdata/clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
