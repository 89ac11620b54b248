// Package thumbdtest runs a real thumbd inside a Go test, for testing code
// that talks to Qencode's transcoding API, in the spirit of
// net/http/httptest.
//
//	srv := thumbdtest.New(t)
//	// point the code under test at srv.URL, with srv.APIKey
//
// The server is the thumbd binary's own wiring (HTTP API, engine, ffmpeg),
// listening on 127.0.0.1 on a free port, with a temporary data directory,
// its tasks in memory, private networks allowed (so sources on
// httptest servers and local S3 servers work) and the test-control plane
// on: Server's methods reset it, hold tasks in a state, inject faults and
// list the callbacks it sent. ffmpeg and ffprobe must be installed.
package thumbdtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
)

// DefaultAPIKey is the API key a Server accepts unless WithAPIKeys says
// otherwise.
const DefaultAPIKey = "thumbdtest-api-key-0001"

// Server is a thumbd running in this process.
type Server struct {
	// URL is the base URL of the API, like http://127.0.0.1:41234: the
	// endpoint to give a Qencode client.
	URL string
	// APIKey is an API key the server accepts at /v1/access_token.
	APIKey string
	// DataDir is the server's data directory (kept files, work in
	// progress); it is removed when the server stops.
	DataDir string

	client  *http.Client
	stop    context.CancelFunc
	done    chan error
	cleanup func()
	closed  bool
	err     error
}

// State is a state a task can be held in, or fail at.
type State string

// The states of a task that Hold and FailTask name.
const (
	Queued      State = "queued"
	Downloading State = "downloading"
	Encoding    State = "encoding"
	Saving      State = "saving"
	Completed   State = "completed"
)

type options struct {
	env     map[string]string
	apiKeys []string
	log     io.Writer
	level   slog.Level
}

// Option configures a Server.
type Option func(*options)

// WithAPIKeys makes the server accept only these API keys; Server.APIKey
// is the first.
func WithAPIKeys(keys ...string) Option {
	return func(o *options) { o.apiKeys = keys }
}

// WithSetting sets one of thumbd's THUMBD_* settings (see thumbd's
// docs/configuration.md), as if it were in the environment: for example
// WithSetting("THUMBD_WORKERS", "4") or WithSetting("THUMBD_STORE",
// "sqlite"). The address, the test-control plane and private networks are
// not settable: a Server always listens on 127.0.0.1 with both on.
func WithSetting(name, value string) Option {
	return func(o *options) { o.env[name] = value }
}

// WithLog copies thumbd's log, from level on, to w. By default New logs
// warnings and errors through t.Log and Start logs nothing.
func WithLog(w io.Writer, level slog.Level) Option {
	return func(o *options) { o.log, o.level = w, level }
}

// New starts a Server for t and stops it when t ends (t.Cleanup). It calls
// t.Fatal if thumbd cannot start, for example when ffmpeg is missing.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	opts = append([]Option{WithLog(tbWriter{t}, slog.LevelWarn)}, opts...)
	s, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("thumbdtest: %v", err)
		}
	})
	return s
}

// Start starts a Server; Close stops it. Tests usually call New instead;
// Start serves where there is no testing.TB (examples, TestMain).
func Start(opts ...Option) (*Server, error) {
	o := options{env: map[string]string{
		"THUMBD_STORE":            "memory",
		"THUMBD_WORKERS":          "2",
		"THUMBD_SHUTDOWN_TIMEOUT": "5s",
		"THUMBD_CALLBACK_RETRY":   "5s",
	}, log: io.Discard}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.apiKeys) == 0 {
		o.apiKeys = []string{DefaultAPIKey}
	}
	o.env["THUMBD_API_KEYS"] = strings.Join(o.apiKeys, ",")
	dir, err := os.MkdirTemp("", "thumbdtest-")
	if err != nil {
		return nil, fmt.Errorf("thumbdtest: data directory: %v", err)
	}
	o.env["THUMBD_DATA_DIR"] = dir
	cfg, err := app.LoadConfig(nil, func(k string) string { return o.env[k] }, io.Discard)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("thumbdtest: %v", err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.TestAPI = true
	// Test servers (httptest, a local S3) listen on loopback: the binary
	// refuses them by default, the kit allows them.
	cfg.AllowPrivateNetworks = true
	if err := findFFmpeg(cfg.FFmpeg, cfg.FFprobe); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}

	log := slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: o.level}))
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log, listening) }()
	select {
	case addr := <-listening:
		return &Server{
			URL:     "http://" + addr,
			APIKey:  o.apiKeys[0],
			DataDir: dir,
			client:  &http.Client{Timeout: 30 * time.Second},
			stop:    cancel,
			done:    done,
			cleanup: func() { os.RemoveAll(dir) },
		}, nil
	case err := <-done:
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("thumbdtest: thumbd did not start: %v", err)
	}
}

// findFFmpeg checks that ffmpeg and ffprobe are installed, and says how to
// install them if not.
func findFFmpeg(ffmpeg, ffprobe string) error {
	var missing []string
	for _, tool := range []string{ffmpeg, ffprobe} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("thumbdtest: %s not found on PATH: thumbd makes thumbnails with ffmpeg. Install it: "+
		"sudo apt-get install ffmpeg (Debian, Ubuntu), brew install ffmpeg (macOS), "+
		"or bash scripts/deps.sh ffmpeg in thumbd's repository; or point THUMBD_FFMPEG and THUMBD_FFPROBE at the binaries",
		strings.Join(missing, " and "))
}

// Close stops the server: running tasks are stopped, and the data
// directory is removed. It returns the server's error, if it stopped on
// one; calling it again returns the same.
func (s *Server) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	s.stop()
	s.err = <-s.done
	s.cleanup()
	return s.err
}

// Reset forgets every task, token, kept file and callback record, and
// every hold and fault; running tasks stop.
func (s *Server) Reset() error {
	return s.post("reset", nil, nil)
}

// Hold is a hold on tasks: they stop in State until released, or for
// Polls status reads.
type Hold struct {
	State     State
	TaskToken string // empty: every task
	Polls     int    // 0: until Release
}

// Hold keeps tasks in a state; it returns the hold's id. Holds make
// polling deterministic: with one-poll holds on Queued and Encoding,
// three status reads see queued, encoding, completed.
func (s *Server) Hold(h Hold) (id int, err error) {
	form := url.Values{"state": {string(h.State)}}
	if h.TaskToken != "" {
		form.Set("task_token", h.TaskToken)
	}
	if h.Polls > 0 {
		form.Set("polls", strconv.Itoa(h.Polls))
	}
	var reply struct{ ID int }
	err = s.post("hold", form, &reply)
	return reply.ID, err
}

// Release lets held tasks go: those of one task (or every task, when
// taskToken is empty), in one state (or any, when state is empty). It
// returns how many holds it removed.
func (s *Server) Release(taskToken string, state State) (int, error) {
	form := url.Values{}
	if taskToken != "" {
		form.Set("task_token", taskToken)
	}
	if state != "" {
		form.Set("state", string(state))
	}
	var reply struct{ Released int }
	err := s.post("release", form, &reply)
	return reply.Released, err
}

// TaskFault makes the next task (or one task) to enter a state fail.
type TaskFault struct {
	Message   string // the task's error_description
	State     State  // default Downloading
	TaskToken string // empty: the next task to enter State
}

// FailTask arms a task fault; it returns the fault's id.
func (s *Server) FailTask(f TaskFault) (int, error) {
	form := url.Values{"message": {f.Message}}
	if f.State != "" {
		form.Set("state", string(f.State))
	}
	if f.TaskToken != "" {
		form.Set("task_token", f.TaskToken)
	}
	var reply struct{ ID int }
	err := s.post("fail/task", form, &reply)
	return reply.ID, err
}

// FailDestinations makes the next times uploads to S3 destinations get
// HTTP status code (0: 503). thumbd retries an upload for its S3 retry
// window (app.Config.S3RetryWindow), then fails the task naming the
// destination.
func (s *Server) FailDestinations(times, code int) error {
	return s.post("fail/destination", timesCode(times, code), nil)
}

// FailCallbacks makes the next times callback attempts fail with HTTP
// status code (0: 500), without being sent.
func (s *Server) FailCallbacks(times, code int) error {
	return s.post("fail/callback", timesCode(times, code), nil)
}

func timesCode(times, code int) url.Values {
	form := url.Values{"times": {strconv.Itoa(times)}}
	if code != 0 {
		form.Set("code", strconv.Itoa(code))
	}
	return form
}

// Callback is a callback thumbd sent (or tried to), as its callback
// inspector recorded it, whether or not anything listened at its URL.
type Callback struct {
	ID        int               `json:"id"`
	TaskToken string            `json:"task_token"`
	Event     string            `json:"event"` // queued, error or saved
	URL       string            `json:"url"`
	Fields    map[string]string `json:"fields"` // the form posted: task_token, status (JSON), payload, ...
	Code      int               `json:"code"`   // the last reply's status; 0 if none came
	Delivered bool              `json:"delivered"`
	Done      bool              `json:"done"` // delivered, or given up
	Attempts  []Attempt         `json:"attempts"`
}

// Attempt is one try at delivering a callback.
type Attempt struct {
	At       time.Time `json:"at"`
	Code     int       `json:"code"`
	Error    *string   `json:"error"`
	Injected bool      `json:"injected"` // failed by FailCallbacks, nothing sent
	TookMS   float64   `json:"took_ms"`
}

// Callbacks lists the callbacks of a task (every task, when taskToken is
// empty), oldest first.
func (s *Server) Callbacks(taskToken string) ([]Callback, error) {
	form := url.Values{}
	if taskToken != "" {
		form.Set("task_token", taskToken)
	}
	var reply struct{ Callbacks []Callback }
	err := s.post("callbacks", form, &reply)
	return reply.Callbacks, err
}

// WaitCallbacks waits until a task has n callbacks that are done
// (delivered or given up), for up to timeout, and returns them.
func (s *Server) WaitCallbacks(taskToken string, n int, timeout time.Duration) ([]Callback, error) {
	deadline := time.Now().Add(timeout)
	for {
		cbs, err := s.Callbacks(taskToken)
		if err != nil {
			return nil, err
		}
		done := 0
		for _, c := range cbs {
			if c.Done {
				done++
			}
		}
		if done >= n {
			return cbs, nil
		}
		if time.Now().After(deadline) {
			return cbs, fmt.Errorf("thumbdtest: %d of %d callbacks done after %s", done, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// post calls a test-control endpoint and decodes its reply into v.
func (s *Server) post(path string, form url.Values, v any) error {
	resp, err := s.client.PostForm(s.URL+"/_thumbd/"+path, form)
	if err != nil {
		return fmt.Errorf("thumbdtest: %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("thumbdtest: %s: %v", path, err)
	}
	var reply struct {
		Error   int
		Message string
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return fmt.Errorf("thumbdtest: %s: HTTP %d, not JSON: %.200s", path, resp.StatusCode, raw)
	}
	if reply.Error != 0 {
		return fmt.Errorf("thumbdtest: %s: error %d: %s", path, reply.Error, reply.Message)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("thumbdtest: %s: %v", path, err)
		}
	}
	return nil
}

// tbWriter writes log lines through t.Log.
type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
