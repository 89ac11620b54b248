package riverq_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/riverq"
)

// TestPartDone records the parts of a task from two processes at once:
// exactly one call, the last, is told that every part is done, and a part
// recorded again (a rerun) does not count twice.
func TestPartDone(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	a, b := openPG(t, url, riverq.Options{}), openPG(t, url, riverq.Options{})
	const parts = 40
	token := engine.NewToken()
	var all atomic.Int32
	var wg sync.WaitGroup
	for i := range parts {
		q := a
		if i%2 == 1 {
			q = b
		}
		wg.Go(func() {
			done, err := q.PartDone(ctx, engine.Part{Token: token, Index: i, Parts: parts, Count: 1, First: i})
			if err != nil {
				t.Error(err)
			}
			if done == parts {
				all.Add(1)
			}
		})
	}
	wg.Wait()
	if n := all.Load(); n != 1 {
		t.Fatalf("%d calls were told every part is done, want 1", n)
	}
	other := engine.NewToken()
	for range 2 {
		done, err := a.PartDone(ctx, engine.Part{Token: other, Index: 0, Parts: 2, Count: 1})
		if err != nil || done != 1 {
			t.Fatalf("part 0 of 2 recorded twice: %d done, %v; want 1", done, err)
		}
	}
}

// TestParts queues the parts of a task, and a task after them: the parts
// run through the part work, each once, and the task queued last runs
// before the parts still waiting (part jobs have a lower priority).
func TestParts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := openPG(t, pgtest.URL(t), riverq.Options{Workers: 1})
	var mu sync.Mutex
	var order []string
	gate := make(chan struct{})
	q.SetPartWork(func(ctx context.Context, p engine.Part) error {
		<-gate
		mu.Lock()
		order = append(order, "part")
		mu.Unlock()
		return nil
	})
	token := engine.NewToken()
	var parts []engine.Part
	for i := range 5 {
		parts = append(parts, engine.Part{Token: token, Index: i, Parts: 5, First: i, Count: 1})
	}
	if err := q.EnqueueParts(ctx, parts); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueParts(ctx, parts); err != nil { // queued once
		t.Fatal(err)
	}
	done := make(chan struct{})
	go q.Run(ctx, func(ctx context.Context, token string) error {
		mu.Lock()
		order = append(order, "task")
		mu.Unlock()
		close(done)
		return nil
	})
	// The first part is running (held); the task is queued behind it.
	time.Sleep(300 * time.Millisecond)
	if err := q.Enqueue(ctx, engine.NewToken()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(gate)
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		got := append([]string(nil), order...)
		mu.Unlock()
		if n == 6 {
			if got[0] != "part" || got[1] != "task" {
				t.Errorf("ran %v, want a part (already running), the task, then the other parts", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ran %v, want 5 parts and a task, each once", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPartLastAttemptGivesUp runs a part whose every run fails outside
// it: after its last attempt the queue gives its task up, once, naming
// the part.
func TestPartLastAttemptGivesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := openPG(t, pgtest.URL(t), riverq.Options{Workers: 1, MaxAttempts: 2})
	g := watchGiveUps(q)
	var runs atomic.Int32
	q.SetPartWork(func(ctx context.Context, p engine.Part) error {
		runs.Add(1)
		return errors.New("database unavailable")
	})
	token := engine.NewToken()
	if err := q.EnqueueParts(ctx, []engine.Part{{Token: token, Index: 1, Parts: 2, First: 3, Count: 3}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { q.Run(ctx, func(context.Context, string) error { return nil }); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-g.ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("the part ran %d times and was not given up", runs.Load())
	}
	time.Sleep(200 * time.Millisecond)
	g.mu.Lock()
	defer g.mu.Unlock()
	want := token + ": part 2 of 2 (outputs 3 to 5) failed 2 times: database unavailable"
	if n := runs.Load(); n != 2 || len(g.calls) != 1 || g.calls[0] != want {
		t.Errorf("ran %d times, gave up %q; want 2 runs and once %q", n, g.calls, want)
	}
}
