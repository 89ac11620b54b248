package engine

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"
)

// TaskRecord is everything kept about one task.
type TaskRecord struct {
	Token   string
	Created time.Time
	Owner   string // KeyOwner of the API key its access token was made with
	Spec    *Spec  // nil until the task is started
	Snap    Snapshot
	Ended   time.Time // when it completed or failed; zero until then
}

// Session is what is kept of an access token.
type Session struct {
	Expires time.Time
	Owner   string // KeyOwner of the API key it was made with
}

// KeyOwner names the owner of an API key without keeping the key: the
// first 16 hex digits of its SHA-256. A task records its owner, so that
// the tasks of one key can be listed.
func KeyOwner(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:8])
}

// TaskFilter says which tasks Store.Tasks lists.
type TaskFilter struct {
	States []State // keep the tasks in one of these states; empty: every state
	Owner  string  // keep the tasks of this owner; empty: every owner
	Limit  int     // the most tasks listed; 0: no limit
}

// Keep reports whether the filter keeps a record (its Limit aside).
func (f TaskFilter) Keep(r *TaskRecord) bool {
	return (len(f.States) == 0 || slices.Contains(f.States, r.Snap.State)) && (f.Owner == "" || f.Owner == r.Owner)
}

// Store keeps access tokens and tasks. MemoryStore keeps them in memory;
// a durable store keeps them across restarts.
type Store interface {
	// PutSession records an access token.
	PutSession(ctx context.Context, token string, s Session) error
	// Session returns what is kept of an access token, or ErrTokenNotFound.
	Session(ctx context.Context, token string) (Session, error)
	// CreateTask records a new task.
	CreateTask(ctx context.Context, rec TaskRecord) error
	// Task returns a task, or ErrTokenNotFound.
	Task(ctx context.Context, token string) (TaskRecord, error)
	// UpdateTask changes a task atomically: f sees the current record and
	// its changes are kept unless it returns an error, which UpdateTask
	// returns. ErrTokenNotFound if there is no such task.
	UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error
	// Tasks returns the tasks f keeps, newest first: by creation time,
	// then by token, descending.
	Tasks(ctx context.Context, f TaskFilter) ([]TaskRecord, error)
	// Unfinished returns the tokens of the tasks that were started and have
	// not ended, oldest first.
	Unfinished(ctx context.Context) ([]string, error)
	// Expired returns the tokens of the tasks that ended before t, or that
	// were created before t and never started.
	Expired(ctx context.Context, t time.Time) ([]string, error)
	// DeleteTask forgets a task; a task it does not know is no error.
	DeleteTask(ctx context.Context, token string) error
	// DeleteSessions forgets the access tokens that expire before t.
	DeleteSessions(ctx context.Context, t time.Time) error
	// Reset forgets every task and access token and returns the tokens of
	// the tasks it forgot.
	Reset(ctx context.Context) ([]string, error)
}

// Queue runs started tasks. MemoryQueue keeps the queue in memory; a
// durable queue keeps it across restarts and can share it between
// processes.
type Queue interface {
	// Enqueue adds a task to the queue.
	Enqueue(ctx context.Context, token string) error
	// Run calls work for queued tasks, as many at a time as the queue was
	// built to run, until ctx ends. Then it takes no new task, lets the calls under way run for
	// the grace period it was built with, cancels their context and waits
	// for them to return. A task whose work returned an error wrapping
	// ErrInterrupted stays queued; a queue may try again, later, a task
	// whose work returned any other error. A work context whose deadline
	// passed (the queue's time limit for one task) ends the task in error.
	Run(ctx context.Context, work func(ctx context.Context, token string) error) error
	// Purge forgets every task that waits in the queue. Tasks under way
	// are not stopped.
	Purge(ctx context.Context) error
}

// MemoryStore is a Store held in memory.
type MemoryStore struct {
	mu       sync.Mutex
	sessions map[string]Session
	tasks    map[string]*TaskRecord
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{sessions: map[string]Session{}, tasks: map[string]*TaskRecord{}}
}

// PutSession implements Store.
func (m *MemoryStore) PutSession(_ context.Context, token string, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[token] = s
	return nil
}

// Session implements Store.
func (m *MemoryStore) Session(_ context.Context, token string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[token]
	if !ok {
		return Session{}, ErrTokenNotFound
	}
	return s, nil
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

// Tasks implements Store.
func (m *MemoryStore) Tasks(_ context.Context, f TaskFilter) ([]TaskRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var recs []*TaskRecord
	for _, r := range m.tasks {
		if f.Keep(r) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *TaskRecord) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.Token, a.Token)
	})
	if f.Limit > 0 && len(recs) > f.Limit {
		recs = recs[:f.Limit]
	}
	out := make([]TaskRecord, len(recs))
	for i, r := range recs {
		out[i] = *r
		out[i].Snap = r.Snap.clone()
	}
	return out, nil
}

// Unfinished implements Store.
func (m *MemoryStore) Unfinished(_ context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var recs []*TaskRecord
	for _, r := range m.tasks {
		if r.Spec != nil && !r.Snap.State.Done() {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *TaskRecord) int { return a.Created.Compare(b.Created) })
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Token
	}
	return out, nil
}

// Expired implements Store.
func (m *MemoryStore) Expired(_ context.Context, t time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for tok, r := range m.tasks {
		if r.Snap.State.Done() && !r.Ended.IsZero() && r.Ended.Before(t) || r.Spec == nil && r.Created.Before(t) {
			out = append(out, tok)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DeleteTask implements Store.
func (m *MemoryStore) DeleteTask(_ context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tasks, token)
	return nil
}

// DeleteSessions implements Store.
func (m *MemoryStore) DeleteSessions(_ context.Context, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tok, s := range m.sessions {
		if s.Expires.Before(t) {
			delete(m.sessions, tok)
		}
	}
	return nil
}

// Reset implements Store.
func (m *MemoryStore) Reset(_ context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Sorted(maps.Keys(m.tasks))
	m.tasks = map[string]*TaskRecord{}
	m.sessions = map[string]Session{}
	return out, nil
}

// MemoryQueue is a Queue held in memory: what it holds is lost when the
// process ends.
type MemoryQueue struct {
	ch      chan string
	workers int // tasks run at once
	mu      sync.Mutex
	known   map[string]bool // queued or running: Enqueue ignores them
	giveUp  func(ctx context.Context, token string, err error)

	// Grace is how long Run lets the work under way go on after its
	// context ends before it cancels it; 0 cancels it at once.
	Grace time.Duration
	// Timeout limits the time one task may run; 0 means no limit.
	Timeout time.Duration
}

// NewMemoryQueue returns a queue that holds up to size tasks and runs up
// to workers of them at once (at least one).
func NewMemoryQueue(size, workers int) *MemoryQueue {
	return &MemoryQueue{ch: make(chan string, size), workers: max(1, workers), known: map[string]bool{}}
}

// Enqueue implements Queue; it fails with ErrBusy when the queue is full.
// A task already queued or running is not queued again.
func (q *MemoryQueue) Enqueue(_ context.Context, token string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.known[token] {
		return nil
	}
	select {
	case q.ch <- token:
		q.known[token] = true
		return nil
	default:
		return ErrBusy
	}
}

func (q *MemoryQueue) forget(token string) {
	q.mu.Lock()
	delete(q.known, token)
	q.mu.Unlock()
}

var _ Retrier = (*MemoryQueue)(nil)

// SetGiveUp implements Retrier: a MemoryQueue makes one attempt.
func (q *MemoryQueue) SetGiveUp(giveUp func(ctx context.Context, token string, err error)) {
	q.mu.Lock()
	q.giveUp = giveUp
	q.mu.Unlock()
}

// Run implements Queue. A task whose work fails with an error other than
// ErrInterrupted is not tried again: it is given up (Retrier).
func (q *MemoryQueue) Run(ctx context.Context, work func(ctx context.Context, token string) error) error {
	workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if q.Grace <= 0 {
			cancel()
			return
		}
		t := time.AfterFunc(q.Grace, cancel)
		context.AfterFunc(workCtx, func() { t.Stop() })
	})
	defer stop()
	var wg sync.WaitGroup
	for range q.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case token := <-q.ch:
					if ctx.Err() != nil {
						select { // keep it for a later Run
						case q.ch <- token:
						default:
						}
						return
					}
					wctx, wcancel := workCtx, context.CancelFunc(func() {})
					if q.Timeout > 0 {
						wctx, wcancel = context.WithTimeout(workCtx, q.Timeout)
					}
					err := work(wctx, token)
					wcancel()
					if errors.Is(err, ErrInterrupted) {
						// Interrupted by shutdown: keep it for a later Run.
						select {
						case q.ch <- token:
						default:
							q.forget(token)
						}
					} else {
						q.forget(token)
						q.mu.Lock()
						giveUp := q.giveUp
						q.mu.Unlock()
						if err != nil && giveUp != nil {
							giveUp(workCtx, token, err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// Purge implements Queue.
func (q *MemoryQueue) Purge(_ context.Context) error {
	for {
		select {
		case token := <-q.ch:
			q.forget(token)
		default:
			return nil
		}
	}
}
