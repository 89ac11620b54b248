package engine

import (
	"context"
	"slices"
	"sync"
	"time"
)

// SharedStore is implemented by stores that several processes use at once
// (pgstore): another process may change a task behind this one's back.
type SharedStore interface {
	Shared() bool
}

type cachedTask struct {
	rec TaskRecord
	at  time.Time
}

// sharedTTL is how long an ended task read from a shared store is served
// from memory.
const sharedTTL = time.Second

// defaultCachedTasks bounds the tasks kept in memory.
const defaultCachedTasks = 10_000

// NewCachedStore returns a Store that keeps the tasks and access tokens it
// reads and writes in memory, so that status polls are answered without
// the database: test suites poll every task every few milliseconds. Every
// writer of the store in this process must go through the one it returns.
//
// When this process owns the store (SQLite, memory), every change goes
// through here, so what is cached is what is stored: writes go through to
// the cache, in the order the store made them. When the store is shared
// (PostgreSQL), only ended tasks are cached, for sharedTTL: another
// process may still add a warning to one (a callback that failed) or
// forget it.
func NewCachedStore(s Store) Store { return newCachedStore(s, defaultCachedTasks) }

// cachedStore is NewCachedStore's Store.
type cachedStore struct {
	Store
	shared bool
	max    int
	ttl    time.Duration // shared stores: how long an ended task is served from memory

	wmu sync.Mutex // exclusive stores: one write at a time, so the cache sees them in order

	mu       sync.Mutex
	tasks    map[string]cachedTask
	order    []string // oldest first; may name tokens no longer cached
	sessions map[string]Session
	writes   uint64 // changes so far: a read that saw one meanwhile does not cache what it read
}

func newCachedStore(s Store, max int) *cachedStore {
	c := &cachedStore{Store: s, max: max, ttl: sharedTTL, tasks: map[string]cachedTask{}, sessions: map[string]Session{}}
	if sh, ok := s.(SharedStore); ok {
		c.shared = sh.Shared()
	}
	return c
}

// clone copies a record's slices, so that a caller appending to them does
// not write into the cache.
func clone(r TaskRecord) TaskRecord {
	r.Snap.Images = slices.Clone(r.Snap.Images)
	r.Snap.Videos = slices.Clone(r.Snap.Videos)
	r.Snap.Warnings = slices.Clone(r.Snap.Warnings)
	return r
}

// put caches rec; the caller holds mu.
func (c *cachedStore) put(rec TaskRecord) {
	if c.shared && !rec.Snap.State.Done() {
		delete(c.tasks, rec.Token)
		return
	}
	if _, ok := c.tasks[rec.Token]; !ok {
		c.order = append(c.order, rec.Token)
	}
	c.tasks[rec.Token] = cachedTask{rec: clone(rec), at: time.Now()}
	for len(c.tasks) > c.max && len(c.order) > 0 {
		delete(c.tasks, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.max { // forgotten tokens pile up: compact
		c.order = slices.DeleteFunc(c.order, func(t string) bool { _, ok := c.tasks[t]; return !ok })
	}
}

// wrote records a change: rec as it now is, or nil for a task forgotten.
func (c *cachedStore) wrote(token string, rec *TaskRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if rec == nil || c.shared {
		delete(c.tasks, token)
		return
	}
	c.put(*rec)
}

func (c *cachedStore) lockWrites() func() {
	if c.shared {
		return func() {}
	}
	c.wmu.Lock()
	return c.wmu.Unlock
}

// Task implements Store.
func (c *cachedStore) Task(ctx context.Context, token string) (TaskRecord, error) {
	c.mu.Lock()
	t, ok := c.tasks[token]
	w := c.writes
	c.mu.Unlock()
	if ok && (!c.shared || time.Since(t.at) < c.ttl) {
		return clone(t.rec), nil
	}
	rec, err := c.Store.Task(ctx, token)
	if err != nil {
		return rec, err
	}
	c.mu.Lock()
	if c.writes == w {
		c.put(rec)
	}
	c.mu.Unlock()
	return rec, nil
}

// CreateTask implements Store.
func (c *cachedStore) CreateTask(ctx context.Context, rec TaskRecord) error {
	defer c.lockWrites()()
	if err := c.Store.CreateTask(ctx, rec); err != nil {
		return err
	}
	c.wrote(rec.Token, &rec)
	return nil
}

// UpdateTask implements Store.
func (c *cachedStore) UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error {
	defer c.lockWrites()()
	var after TaskRecord
	err := c.Store.UpdateTask(ctx, token, func(r *TaskRecord) error {
		if err := f(r); err != nil {
			return err
		}
		after = *r
		return nil
	})
	if err != nil {
		c.wrote(token, nil) // whatever happened, read it again
		return err
	}
	c.wrote(token, &after)
	return nil
}

// DeleteTask implements Store.
func (c *cachedStore) DeleteTask(ctx context.Context, token string) error {
	defer c.lockWrites()()
	err := c.Store.DeleteTask(ctx, token)
	c.wrote(token, nil)
	return err
}

// Reset implements Store.
func (c *cachedStore) Reset(ctx context.Context) ([]string, error) {
	defer c.lockWrites()()
	tokens, err := c.Store.Reset(ctx)
	c.mu.Lock()
	c.writes++
	clear(c.tasks)
	c.order = nil
	clear(c.sessions)
	c.mu.Unlock()
	return tokens, err
}

// PutSession implements Store.
func (c *cachedStore) PutSession(ctx context.Context, token string, s Session) error {
	if err := c.Store.PutSession(ctx, token, s); err != nil {
		return err
	}
	if !c.shared {
		c.mu.Lock()
		c.sessions[token] = s
		c.mu.Unlock()
	}
	return nil
}

// Session implements Store.
func (c *cachedStore) Session(ctx context.Context, token string) (Session, error) {
	c.mu.Lock()
	s, ok := c.sessions[token]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	return c.Store.Session(ctx, token)
}

// DeleteSessions implements Store.
func (c *cachedStore) DeleteSessions(ctx context.Context, t time.Time) error {
	err := c.Store.DeleteSessions(ctx, t)
	c.mu.Lock()
	for tok, s := range c.sessions {
		if s.Expires.Before(t) {
			delete(c.sessions, tok)
		}
	}
	c.mu.Unlock()
	return err
}
