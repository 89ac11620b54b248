package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// ObjectStore uploads a file to a user's destination. s3store.Store
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
	APIKeys  []string        // accepted API keys; empty: any key of at least 12 characters
	Workers  int             // ffmpeg processes and tasks run at once; default 2
	Accuracy ffmpeg.Accuracy // of outputs that do not choose; default exact
	WorkDir  string          // scratch space for frames being made
	TokenTTL time.Duration   // lifetime of an access token; default 24 h
	Runner   ffmpeg.Runner
	Objects  ObjectStore
	Files    FileStore
	Store    Store    // default: a MemoryStore
	Queue    Queue    // default: a MemoryQueue of 4096 tasks, Workers at a time
	Notifier Notifier // told of task events (callbacks); may be nil
	Gate     Gate     // may hold or fail a task as it changes state; may be nil
	Observer Observer // told what happens, for metrics; may be nil
	// Retention is how long a task is kept after it ends, with the files
	// thumbd keeps for it, and how long a task created but never started
	// is kept; 0 keeps them for ever.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time

	// Sources reads sources for ffmpeg; nil: ffmpeg reads http(s) URLs
	// itself, without guard rails.
	Sources Sources
	// TaskTimeout bounds one task from its start to its end, reading the
	// source included; 0 means no limit.
	TaskTimeout time.Duration

	// MaxPixels refuses a source whose video has more pixels a frame
	// (coded width × height), before any frame is decoded; 0: no limit.
	MaxPixels int64
	// MaxOutputs refuses, at Start, a task with more outputs; 0: no limit.
	MaxOutputs int
	// MaxImages ends a task that would take more frames (images, and the
	// tiles of sprites) once its source's length is known; 0: no limit.
	MaxImages int
	// UploadManifests uploads every output's manifest to its destinations
	// beside the images; otherwise only outputs that ask (Output.Manifest)
	// get one there. thumbd keeps every manifest either way.
	UploadManifests bool
	// ProbeCache is how many sources' probes and frame indexes are kept
	// for tasks that read the same source again unchanged (see
	// ContentKeyer); 0 takes the default, 256; negative keeps none.
	ProbeCache int
	// PartOutputs, when positive and the Queue is a Spreader, spreads a
	// task with more outputs than that into parts of that many outputs,
	// each a job of its own that any process sharing the queue runs; the
	// task completes when its parts do. 0: a task is one job.
	PartOutputs int
	// PartImages, when positive and tasks are spread (PartOutputs), cuts
	// a series of more images than that into chunks of that many (rounded
	// up to whole sprite sheets), each a part of its own; the part that
	// ends the task writes the series' WebVTT file and manifest. 0: a
	// series is made whole, in one part.
	PartImages int
}

// Event is something that happened to a task that its owner is told of.
type Event struct {
	Token string
	Kind  EventKind
	Snap  Snapshot
	Spec  Spec
}

// EventKind names an event.
type EventKind string

// The events, as Qencode names them in callbacks.
const (
	EventQueued EventKind = "queued" // the task was started
	EventError  EventKind = "error"  // the task failed (followed by EventSaved)
	EventSaved  EventKind = "saved"  // the task ended, completed or not
)

// Notifier is told of task events. Notify must not block: delivery is the
// notifier's business.
type Notifier interface {
	Notify(ctx context.Context, ev Event)
}

// Gate is consulted each time a running task is about to enter a state.
// It may hold the task by blocking, or fail it by returning an error, whose
// text becomes the task's error description.
type Gate interface {
	Enter(ctx context.Context, token string, st State) error
}

// Engine owns tokens, tasks and the workers that run them.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	store    Store
	queue    Queue
	procs    ffmpeg.Slots // one slot per ffmpeg process allowed to run (THUMBD_WORKERS)
	encoders *encoders    // what the runner's ffmpeg said of its encoders
	probes   *ffmpeg.ProbeCache
	indexing singleflight.Group // by source content key: one index build at a time

	mu      sync.Mutex
	closed  bool
	running map[string]context.CancelCauseFunc // tasks under way
}

// DefaultProbeCache is how many sources' probes are kept by default.
const DefaultProbeCache = 256

// MinAPIKeyLength is the shortest API key accepted when no keys are
// configured; Qencode's SDKs refuse shorter keys themselves.
const MinAPIKeyLength = 12

// New builds an Engine. Call Run to start its workers.
func New(cfg Config) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Accuracy == "" {
		cfg.Accuracy = ffmpeg.AccuracyExact
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
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Queue == nil {
		cfg.Queue = NewMemoryQueue(4096, cfg.Workers)
	}
	if cfg.ProbeCache == 0 {
		cfg.ProbeCache = DefaultProbeCache
	}
	return &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    cfg.Store,
		queue:    cfg.Queue,
		procs:    ffmpeg.NewSlots(cfg.Workers),
		encoders: &encoders{runner: cfg.Runner},
		probes:   ffmpeg.NewProbeCache(cfg.ProbeCache, 0),

		running: map[string]context.CancelCauseFunc{},
	}
}

// Runner returns the ffmpeg runner the engine uses.
func (e *Engine) Runner() ffmpeg.Runner { return e.cfg.Runner }

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

// keyAccepted reports whether the API key of owner (KeyOwner) is still
// accepted: when the server lists its keys, a token or task made with a
// key removed since is refused.
func (e *Engine) keyAccepted(owner string) bool {
	return len(e.cfg.APIKeys) == 0 || slices.ContainsFunc(e.cfg.APIKeys, func(k string) bool { return KeyOwner(k) == owner })
}

// NewSession checks an API key and returns a new access token and its
// expiry.
func (e *Engine) NewSession(ctx context.Context, apiKey string) (token string, expires time.Time, err error) {
	if len(apiKey) < MinAPIKeyLength || strings.ContainsAny(apiKey, " \t\r\n") {
		return "", time.Time{}, ErrBadAPIKey
	}
	if len(e.cfg.APIKeys) > 0 && !slices.Contains(e.cfg.APIKeys, apiKey) {
		return "", time.Time{}, ErrUnknownAPIKey
	}
	token = NewToken()
	expires = e.cfg.Now().Add(e.cfg.TokenTTL).UTC().Truncate(time.Second)
	if err := e.store.PutSession(ctx, token, Session{Expires: expires, Owner: KeyOwner(apiKey)}); err != nil {
		return "", time.Time{}, err
	}
	e.log.Info("session created", "key", Redact(apiKey), "token", Redact(token))
	return token, expires, nil
}

// CreateTask checks an access token and returns a new task token.
func (e *Engine) CreateTask(ctx context.Context, accessToken string) (string, error) {
	if !ValidToken(accessToken) {
		return "", ErrBadToken
	}
	now := e.cfg.Now()
	s, err := e.store.Session(ctx, accessToken)
	if err != nil {
		return "", err
	}
	if !now.Before(s.Expires) {
		return "", ErrTokenNotFound
	}
	if !e.keyAccepted(s.Owner) {
		// Its key was removed from the server's list since. "Token not
		// found" makes Qencode's SDKs ask for a new token, which the
		// key no longer gets.
		e.log.Info("access token refused: its API key is no longer accepted", "token", Redact(accessToken))
		return "", fmt.Errorf("%w: its API key is no longer accepted", ErrTokenNotFound)
	}
	rec := TaskRecord{Token: NewToken(), Created: now, Owner: s.Owner, Snap: Snapshot{State: StateCreated}}
	if err := e.store.CreateTask(ctx, rec); err != nil {
		return "", err
	}
	return rec.Token, nil
}

// Start validates spec and queues the task. A task starts once.
func (e *Engine) Start(ctx context.Context, taskToken string, spec Spec) error {
	if !ValidToken(taskToken) {
		return ErrBadToken
	}
	if err := Validate(spec); err != nil {
		return err
	}
	if max := e.cfg.MaxOutputs; max > 0 && len(spec.Outputs) > max {
		return &ValidationError{Field: "format", Reason: fmt.Sprintf("lists %d outputs, more than this server's limit of %d a task (THUMBD_MAX_OUTPUTS); split them over several tasks", len(spec.Outputs), max)}
	}
	if err := e.checkEncoders(ctx, spec); err != nil {
		return err
	}
	if e.cfg.Sources != nil {
		// The token's own errors come first: SDKs act on them.
		rec, err := e.store.Task(ctx, taskToken)
		if err != nil {
			return err
		}
		if rec.Spec != nil {
			return ErrTaskStarted
		}
		if err := e.cfg.Sources.Check(ctx, taskToken, spec.Source); err != nil {
			return &ValidationError{Field: "source", Reason: err.Error()}
		}
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrShuttingDown
	}
	var snap Snapshot
	err := e.store.UpdateTask(ctx, taskToken, func(r *TaskRecord) error {
		if r.Spec != nil {
			return ErrTaskStarted
		}
		if r.Owner != "" && !e.keyAccepted(r.Owner) {
			return fmt.Errorf("%w: its API key is no longer accepted", ErrTokenNotFound)
		}
		r.Spec = &spec
		r.Snap.State = StateQueued
		r.Snap.Payload = spec.Payload
		r.Snap.Warnings = append(r.Snap.Warnings, spec.Warnings...)
		snap = r.Snap
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.queue.Enqueue(ctx, taskToken); err != nil {
		_ = e.store.UpdateTask(ctx, taskToken, func(r *TaskRecord) error {
			r.Spec = nil
			r.Snap.State = StateCreated
			return nil
		})
		return err
	}
	e.log.Info("task queued", "task", Redact(taskToken), "outputs", len(spec.Outputs))
	e.cfg.Observer.TaskQueued()
	e.notify(ctx, taskToken, EventQueued, snap, spec)
	return nil
}

// Status returns a task's state.
func (e *Engine) Status(ctx context.Context, taskToken string) (Snapshot, error) {
	rec, err := e.store.Task(ctx, taskToken)
	if err != nil {
		return Snapshot{}, err
	}
	return rec.Snap, nil
}

// AddWarning adds a warning to a task, for problems found outside the
// engine (a callback that could not be delivered).
func (e *Engine) AddWarning(ctx context.Context, taskToken string, w Warning) error {
	return TaskWarnings{Store: e.store}.AddWarning(ctx, taskToken, w)
}

// TaskWarnings adds warnings to the tasks of a Store, as Engine.AddWarning
// does. It lets what the engine notifies (callbacks) report back to a task
// without holding the Engine: it is built before the Engine, from the Store
// they share, so that components are wired in one direction.
type TaskWarnings struct{ Store Store }

// AddWarning adds a warning to a task; a task the store does not know
// gives ErrTokenNotFound.
func (t TaskWarnings) AddWarning(ctx context.Context, taskToken string, w Warning) error {
	return t.Store.UpdateTask(ctx, taskToken, func(r *TaskRecord) error {
		r.Snap.Warnings = append(r.Snap.Warnings, w)
		return nil
	})
}

// Run queues again the tasks a previous run left unfinished, then works the
// queue until ctx ends. Then it takes no new task, lets the tasks under way
// finish for the queue's grace period, stops the ffmpeg processes still
// running and returns once every worker has stopped. Tasks that were
// interrupted stay queued. While it runs, tasks past the retention period
// are forgotten.
func (e *Engine) Run(ctx context.Context) error {
	if err := os.MkdirAll(e.cfg.WorkDir, 0o755); err != nil {
		return err
	}
	if err := e.requeue(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return err
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	var sweeper sync.WaitGroup
	sweeper.Go(func() { e.sweepLoop(sweepCtx) })
	if s, ok := e.queue.(Spreader); ok {
		s.SetPartWork(e.runPart)
	}
	if r, ok := e.queue.(Retrier); ok {
		r.SetGiveUp(e.giveUp)
	}
	err := e.queue.Run(ctx, e.runTask)
	stopSweep()
	sweeper.Wait()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return err
}

// Close refuses new tasks; Run keeps going until its context ends.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
}

// update changes a task's snapshot in the store.
func (e *Engine) update(ctx context.Context, token string, f func(s *Snapshot)) {
	err := e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		f(&r.Snap)
		return nil
	})
	if err != nil {
		e.log.Error("updating task", "task", Redact(token), "err", err)
	}
}

func (e *Engine) notify(ctx context.Context, token string, kind EventKind, snap Snapshot, spec Spec) {
	if e.cfg.Notifier != nil {
		e.cfg.Notifier.Notify(context.WithoutCancel(ctx), Event{Token: token, Kind: kind, Snap: snap, Spec: spec})
	}
}
