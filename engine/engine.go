package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/storage"
)

// ObjectStore uploads a file to a user's destination. storage.S3
// implements it.
type ObjectStore interface {
	Put(ctx context.Context, dst storage.Destination, body io.ReadSeeker, size int64, contentType string) (storage.Location, error)
}

// FileStore keeps a file that has no destination, under a slash-separated
// name that starts with the task token. storage.Local implements it.
type FileStore interface {
	Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error)
}

// Config is everything an Engine needs. Zero values take the defaults.
type Config struct {
	APIKeys  []string      // accepted API keys; empty: any key of at least 12 characters
	Workers  int           // ffmpeg processes and tasks run at once; default 2
	WorkDir  string        // scratch space for frames being made
	TokenTTL time.Duration // lifetime of an access token; default 24 h
	Runner   Runner
	Objects  ObjectStore
	Files    FileStore
	Logger   *slog.Logger
	Now      func() time.Time
}

// Engine owns tokens, tasks and the workers that run them.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	procs chan struct{} // one slot per ffmpeg process allowed to run

	mu       sync.Mutex
	sessions map[string]time.Time // access token → expiry
	tasks    map[string]*task
	queue    chan string
	closed   bool
}

// MinAPIKeyLength is the shortest API key accepted when no keys are
// configured; Qencode's SDKs refuse shorter keys themselves.
const MinAPIKeyLength = 12

// New builds an Engine. Call Run to start its workers.
func New(cfg Config) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Runner.FFmpeg == "" {
		cfg.Runner.FFmpeg = "ffmpeg"
	}
	if cfg.Runner.FFprobe == "" {
		cfg.Runner.FFprobe = "ffprobe"
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "thumbd-work")
	}
	return &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		procs:    make(chan struct{}, cfg.Workers),
		sessions: map[string]time.Time{},
		tasks:    map[string]*task{},
		queue:    make(chan string, 4096),
	}
}

// Runner returns the ffmpeg runner the engine uses.
func (e *Engine) Runner() Runner { return e.cfg.Runner }

// NewToken returns 32 random hex digits.
func NewToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// ValidToken reports whether s has the shape of a thumbd token.
func ValidToken(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Redact shortens a secret for logs: its first four characters and an
// ellipsis.
func Redact(s string) string {
	if len(s) <= 4 {
		return "…"
	}
	return s[:4] + "…"
}

// NewSession checks an API key and returns a new access token and its
// expiry.
func (e *Engine) NewSession(apiKey string) (token string, expires time.Time, err error) {
	if len(apiKey) < MinAPIKeyLength || strings.ContainsAny(apiKey, " \t\r\n") {
		return "", time.Time{}, ErrBadAPIKey
	}
	if len(e.cfg.APIKeys) > 0 && !slices.Contains(e.cfg.APIKeys, apiKey) {
		return "", time.Time{}, ErrUnknownAPIKey
	}
	token = NewToken()
	expires = e.cfg.Now().Add(e.cfg.TokenTTL).UTC().Truncate(time.Second)
	e.mu.Lock()
	e.sessions[token] = expires
	e.mu.Unlock()
	e.log.Info("session created", "key", Redact(apiKey), "token", Redact(token))
	return token, expires, nil
}

// CreateTask checks an access token and returns a new task token.
func (e *Engine) CreateTask(accessToken string) (string, error) {
	if !ValidToken(accessToken) {
		return "", ErrBadToken
	}
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.sessions[accessToken]
	if !ok || !now.Before(exp) {
		delete(e.sessions, accessToken)
		return "", ErrTokenNotFound
	}
	t := &task{token: NewToken(), created: now, snap: Snapshot{State: StateCreated}}
	e.tasks[t.token] = t
	return t.token, nil
}

// Start validates spec and queues the task. A task starts once.
func (e *Engine) Start(taskToken string, spec Spec) error {
	if !ValidToken(taskToken) {
		return ErrBadToken
	}
	if err := Validate(spec); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrShuttingDown
	}
	t, ok := e.tasks[taskToken]
	if !ok {
		return ErrTokenNotFound
	}
	if t.spec != nil {
		return ErrTaskStarted
	}
	select {
	case e.queue <- taskToken:
	default:
		return ErrBusy
	}
	t.spec = &spec
	t.snap.State = StateQueued
	t.snap.Payload = spec.Payload
	e.log.Info("task queued", "task", Redact(taskToken), "outputs", len(spec.Outputs))
	return nil
}

// ErrBusy means the queue is full; try again later.
var ErrBusy = errors.New("the task queue is full, try again later")

// Status returns a copy of a task's state.
func (e *Engine) Status(taskToken string) (Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tasks[taskToken]
	if !ok {
		return Snapshot{}, ErrTokenNotFound
	}
	return t.snap.clone(), nil
}

// Run works the queue until ctx ends, then stops running ffmpeg processes
// and returns once every worker has stopped. Tasks that were interrupted go
// back to the queued state.
func (e *Engine) Run(ctx context.Context) error {
	if err := os.MkdirAll(e.cfg.WorkDir, 0o755); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case token := <-e.queue:
					e.runTask(ctx, token)
				}
			}
		})
	}
	<-ctx.Done()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	wg.Wait()
	return nil
}

// update changes a task's snapshot under the lock.
func (e *Engine) update(token string, f func(s *Snapshot)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tasks[token]; ok {
		f(&t.snap)
	}
}

type task struct {
	token   string
	created time.Time
	spec    *Spec
	snap    Snapshot
}
