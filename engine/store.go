package engine

import (
	"context"
	"sync"
	"time"
)

// TaskRecord is everything kept about one task.
type TaskRecord struct {
	Token   string
	Created time.Time
	Spec    *Spec // nil until the task is started
	Snap    Snapshot
}

// Store keeps access tokens and tasks. MemoryStore keeps them in memory;
// a durable store keeps them across restarts.
type Store interface {
	// PutSession records an access token and its expiry.
	PutSession(ctx context.Context, token string, expires time.Time) error
	// Session returns an access token's expiry, or ErrTokenNotFound.
	Session(ctx context.Context, token string) (time.Time, error)
	// CreateTask records a new task.
	CreateTask(ctx context.Context, rec TaskRecord) error
	// Task returns a task, or ErrTokenNotFound.
	Task(ctx context.Context, token string) (TaskRecord, error)
	// UpdateTask changes a task atomically: f sees the current record and
	// its changes are kept unless it returns an error, which UpdateTask
	// returns. ErrTokenNotFound if there is no such task.
	UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error
}

// Queue runs started tasks. MemoryQueue keeps the queue in memory; a
// durable queue keeps it across restarts and can share it between
// processes.
type Queue interface {
	// Enqueue adds a task to the queue.
	Enqueue(ctx context.Context, token string) error
	// Run calls work for queued tasks, at most workers at a time, until
	// ctx ends; then it waits for the calls under way, whose context is
	// cancelled, and returns. A task whose work returned an error wrapping
	// ErrInterrupted stays queued.
	Run(ctx context.Context, workers int, work func(ctx context.Context, token string) error) error
}

// MemoryStore is a Store held in memory.
type MemoryStore struct {
	mu       sync.Mutex
	sessions map[string]time.Time
	tasks    map[string]*TaskRecord
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{sessions: map[string]time.Time{}, tasks: map[string]*TaskRecord{}}
}

// PutSession implements Store.
func (m *MemoryStore) PutSession(_ context.Context, token string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[token] = expires
	return nil
}

// Session implements Store.
func (m *MemoryStore) Session(_ context.Context, token string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.sessions[token]
	if !ok {
		return time.Time{}, ErrTokenNotFound
	}
	return exp, nil
}

// CreateTask implements Store.
func (m *MemoryStore) CreateTask(_ context.Context, rec TaskRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := rec
	r.Snap = rec.Snap.clone()
	m.tasks[rec.Token] = &r
	return nil
}

// Task implements Store.
func (m *MemoryStore) Task(_ context.Context, token string) (TaskRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.tasks[token]
	if !ok {
		return TaskRecord{}, ErrTokenNotFound
	}
	c := *r
	c.Snap = r.Snap.clone()
	return c, nil
}

// UpdateTask implements Store.
func (m *MemoryStore) UpdateTask(_ context.Context, token string, f func(*TaskRecord) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.tasks[token]
	if !ok {
		return ErrTokenNotFound
	}
	c := *r
	c.Snap = r.Snap.clone()
	if err := f(&c); err != nil {
		return err
	}
	*r = c
	return nil
}

// MemoryQueue is a Queue held in memory: what it holds is lost when the
// process ends.
type MemoryQueue struct {
	ch chan string
}

// NewMemoryQueue returns a queue that holds up to size tasks.
func NewMemoryQueue(size int) *MemoryQueue {
	return &MemoryQueue{ch: make(chan string, size)}
}

// Enqueue implements Queue; it fails with ErrBusy when the queue is full.
func (q *MemoryQueue) Enqueue(_ context.Context, token string) error {
	select {
	case q.ch <- token:
		return nil
	default:
		return ErrBusy
	}
}

// Run implements Queue.
func (q *MemoryQueue) Run(ctx context.Context, workers int, work func(ctx context.Context, token string) error) error {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case token := <-q.ch:
					if err := work(ctx, token); err != nil && ctx.Err() != nil {
						// Interrupted by shutdown: keep it for a later Run.
						select {
						case q.ch <- token:
						default:
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}
