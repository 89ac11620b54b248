package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sweepStore is a MemoryStore whose retention sweep holds until its
// context ends, and then takes a moment to return.
type sweepStore struct {
	*MemoryStore
	entered  chan struct{}
	once     sync.Once
	returned atomic.Bool
}

func (s *sweepStore) DeleteSessions(ctx context.Context, before time.Time) error {
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	s.returned.Store(true)
	return ctx.Err()
}

// TestRunWaitsForTheSweeper checks that Run ends its retention sweeper
// with its context and returns only once the sweeper has stopped.
func TestRunWaitsForTheSweeper(t *testing.T) {
	store := &sweepStore{MemoryStore: NewMemoryStore(), entered: make(chan struct{})}
	e := New(Config{Store: store, Retention: time.Hour, WorkDir: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	select {
	case <-store.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sweeper did not start")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !store.returned.Load() {
		t.Error("Run returned while its sweeper was still running")
	}
}

// holdGate holds a task in every state until its context ends.
type holdGate struct{}

func (holdGate) Enter(ctx context.Context, token string, st State) error {
	<-ctx.Done()
	return context.Cause(ctx)
}

// TestTaskTimeLimit checks that a task held past Config.TaskTimeout ends
// in error with a time limit error, saying which limit, and not with an
// error about its source.
func TestTaskTimeLimit(t *testing.T) {
	e := New(Config{TaskTimeout: 200 * time.Millisecond, Gate: holdGate{}, WorkDir: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tok, _, err := e.NewSession(ctx, "abcdefghijkl")
	if err != nil {
		t.Fatal(err)
	}
	task, err := e.CreateTask(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, task, Spec{Source: "https://example.com/v.mp4", Outputs: []Output{{Kind: KindThumbnail}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var s Snapshot
	for s, _ = e.Status(ctx, task); !s.State.Done() && time.Now().Before(deadline); s, _ = e.Status(ctx, task) {
		time.Sleep(10 * time.Millisecond)
	}
	want := "the task took longer than this server's time limit of 200ms (THUMBD_TASK_TIMEOUT) and was stopped; a source that answers slowly is the usual cause"
	if s.State != StateError || s.Error != want {
		t.Errorf("task %s with %q, want error with %q", s.State, s.Error, want)
	}
}

func TestTimeLimitError(t *testing.T) {
	var err error = &timeLimitError{Limit: time.Minute}
	var se *sourceError
	if !errors.Is(err, errTaskTimeout) || errors.As(err, &se) {
		t.Errorf("%v: want errTaskTimeout, not a source error", err)
	}
	if got, want := (&timeLimitError{}).Error(), "the task took longer than this server's time limit for one task and was stopped; a source that answers slowly is the usual cause"; got != want {
		t.Errorf("without a known limit: %q, want %q", got, want)
	}
}
