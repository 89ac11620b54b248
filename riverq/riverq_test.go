package riverq_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/riverq"
	"github.com/thumbd/thumbd/sqlitestore"
)

// open opens a fresh database in dir and a queue on it.
func open(t *testing.T, dir string, opts riverq.Options) (*sqlitestore.DB, *riverq.Queue[*sql.Tx]) {
	t.Helper()
	db, err := sqlitestore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Poll = 50 * time.Millisecond
	q, err := riverq.NewSQLite(context.Background(), db.SQL(), opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, q
}

// recorder is a work function that records the tokens it ran.
type recorder struct {
	mu   sync.Mutex
	runs []string
	ran  chan string
	do   func(ctx context.Context, token string) error
}

func newRecorder(do func(ctx context.Context, token string) error) *recorder {
	return &recorder{ran: make(chan string, 100), do: do}
}

func (r *recorder) work(ctx context.Context, token string) error {
	var err error
	if r.do != nil {
		err = r.do(ctx, token)
	}
	r.mu.Lock()
	r.runs = append(r.runs, token)
	r.mu.Unlock()
	r.ran <- token
	return err
}

func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case tok := <-r.ran:
			got = append(got, tok)
		case <-time.After(10 * time.Second):
			t.Fatalf("ran %v, want %d runs", got, n)
		}
	}
	return got
}

// run runs q until the returned stop is called.
func run(q engine.Queue, work func(context.Context, string) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, work); close(done) }()
	return func() { cancel(); <-done }
}

func TestRunsEachTokenOnce(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 2})
	defer db.Close()
	rec := newRecorder(nil)
	ctx := context.Background()
	for i := range 3 {
		tok := fmt.Sprintf("%032d", i)
		if err := q.Enqueue(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(ctx, tok); err != nil { // a duplicate: ignored
			t.Fatal(err)
		}
	}
	stop := run(q, rec.work)
	got := rec.wait(t, 3)
	time.Sleep(300 * time.Millisecond)
	stop()
	if len(rec.runs) != 3 {
		t.Errorf("ran %v (%d runs), want each of 3 tokens once", rec.runs, len(rec.runs))
	}
	seen := map[string]bool{}
	for _, tok := range got {
		if seen[tok] {
			t.Errorf("%s ran twice", tok)
		}
		seen[tok] = true
	}
}

func TestInterruptedTaskRunsAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db, q := open(t, dir, riverq.Options{Workers: 1, Grace: 50 * time.Millisecond})
	started := make(chan struct{}, 1)
	rec := newRecorder(func(ctx context.Context, token string) error {
		started <- struct{}{}
		<-ctx.Done() // never finishes by itself
		return fmt.Errorf("%w: %v", engine.ErrInterrupted, ctx.Err())
	})
	tok := "0123456789abcdef0123456789abcdef"
	if err := q.Enqueue(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	stop := run(q, rec.work)
	<-started
	began := time.Now()
	stop() // the grace passes, the work is cancelled, the job is snoozed
	if d := time.Since(began); d < 50*time.Millisecond {
		t.Errorf("stop took %v, want at least the 50ms grace", d)
	}
	db.Close()

	db, q = open(t, dir, riverq.Options{Workers: 1})
	defer db.Close()
	rec2 := newRecorder(nil)
	stop = run(q, rec2.work)
	defer stop()
	if got := rec2.wait(t, 1); got[0] != tok {
		t.Errorf("ran %v after the restart, want %s", got, tok)
	}
}

func TestGraceLetsRunningTaskFinish(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1, Grace: 5 * time.Second})
	defer db.Close()
	started := make(chan struct{}, 1)
	var finished error
	rec := newRecorder(func(ctx context.Context, token string) error {
		started <- struct{}{}
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			finished = ctx.Err()
		}
		return nil
	})
	if err := q.Enqueue(context.Background(), "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	stop := run(q, rec.work)
	<-started
	stop()
	if finished != nil {
		t.Errorf("the running task was cancelled (%v) although it finished within the grace", finished)
	}
	if len(rec.runs) != 1 {
		t.Errorf("runs = %v", rec.runs)
	}
}

func TestTimeoutIsADeadline(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1, Timeout: 200 * time.Millisecond})
	defer db.Close()
	errc := make(chan error, 1)
	rec := newRecorder(func(ctx context.Context, token string) error {
		<-ctx.Done()
		errc <- ctx.Err()
		return nil // the engine ends the task in error itself
	})
	if err := q.Enqueue(context.Background(), "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	stop := run(q, rec.work)
	defer stop()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("work context ended with %v, want a deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the time limit did not end the task")
	}
}

func TestFailedRunIsRetried(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1})
	defer db.Close()
	n := 0
	rec := newRecorder(func(ctx context.Context, token string) error {
		n++
		if n == 1 {
			return errors.New("database unavailable")
		}
		return nil
	})
	if err := q.Enqueue(context.Background(), "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	stop := run(q, rec.work)
	defer stop()
	rec.wait(t, 2) // River's first retry comes after about a second
}

func TestPurge(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1})
	defer db.Close()
	ctx := context.Background()
	for i := range 5 {
		if err := q.Enqueue(ctx, fmt.Sprintf("%032d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(nil)
	stop := run(q, rec.work)
	time.Sleep(500 * time.Millisecond)
	stop()
	if len(rec.runs) != 0 {
		t.Errorf("purged tasks ran: %v", rec.runs)
	}
	// A purged token can be queued again.
	if err := q.Enqueue(ctx, fmt.Sprintf("%032d", 1)); err != nil {
		t.Fatal(err)
	}
	stop = run(q, rec.work)
	defer stop()
	rec.wait(t, 1)
}

func TestLen(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1})
	defer db.Close()
	ctx := context.Background()
	for i := range 3 {
		if err := q.Enqueue(ctx, fmt.Sprintf("%032d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A callback waiting is not a task.
	if err := q.Callbacks().Add(ctx, callback.Job{TaskToken: "t", Event: engine.EventSaved, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(ctx); n != 3 || err != nil {
		t.Fatalf("Len = %d, %v; want 3 queued", n, err)
	}
	rec := newRecorder(nil)
	stop := run(q, rec.work)
	rec.wait(t, 3)
	stop()
	if n, err := q.Len(ctx); n != 0 || err != nil {
		t.Errorf("Len = %d, %v after every task ran; want 0", n, err)
	}
}

// givenUp records the calls of a queue's give-up function.
type givenUp struct {
	mu    sync.Mutex
	calls []string
	ch    chan struct{}
}

func watchGiveUps(q engine.Retrier) *givenUp {
	g := &givenUp{ch: make(chan struct{}, 10)}
	q.SetGiveUp(func(ctx context.Context, token string, err error) {
		g.mu.Lock()
		g.calls = append(g.calls, token+": "+err.Error())
		g.mu.Unlock()
		g.ch <- struct{}{}
	})
	return g
}

// TestLastAttemptGivesUp runs a task whose every run fails outside it:
// after its last attempt, and not before, the queue gives it up, once,
// with the attempts and the last error.
func TestLastAttemptGivesUp(t *testing.T) {
	db, q := open(t, t.TempDir(), riverq.Options{Workers: 1, MaxAttempts: 2})
	defer db.Close()
	g := watchGiveUps(q)
	rec := newRecorder(func(ctx context.Context, token string) error {
		return errors.New("database unavailable")
	})
	tok := "0123456789abcdef0123456789abcdef"
	if err := q.Enqueue(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	stop := run(q, rec.work)
	defer stop()
	rec.wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	g.mu.Lock()
	if len(g.calls) != 0 {
		t.Errorf("given up after the first of two attempts: %v", g.calls)
	}
	g.mu.Unlock()
	rec.wait(t, 1) // River's first retry comes after about a second
	select {
	case <-g.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the last attempt failed and the task was not given up")
	}
	time.Sleep(200 * time.Millisecond)
	g.mu.Lock()
	defer g.mu.Unlock()
	if want := tok + ": it failed 2 times: database unavailable"; len(g.calls) != 1 || g.calls[0] != want {
		t.Errorf("gave up %q, want once %q", g.calls, want)
	}
}
