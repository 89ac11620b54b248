package riverq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/pgstore"
	"github.com/thumbd/thumbd/riverq"
)

// openPG opens the database at url, as a separate thumbd process would,
// and a queue on it.
func openPG(t *testing.T, url string, opts riverq.Options) *riverq.Queue[pgx.Tx] {
	t.Helper()
	db, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Poll = 50 * time.Millisecond
	q, err := riverq.NewPostgres(context.Background(), db.Pool(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestPostgres runs the queue's contract on PostgreSQL.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	t.Run("each token runs once", func(t *testing.T) {
		q := openPG(t, pgtest.URL(t), riverq.Options{Workers: 2})
		rec := newRecorder(nil)
		for i := range 3 {
			tok := fmt.Sprintf("%032d", i)
			for range 2 { // the second is a duplicate: ignored
				if err := q.Enqueue(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
		}
		stop := run(q, rec.work)
		got := rec.wait(t, 3)
		time.Sleep(300 * time.Millisecond)
		stop()
		seen := map[string]bool{}
		for _, tok := range got {
			if seen[tok] {
				t.Errorf("%s ran twice", tok)
			}
			seen[tok] = true
		}
		if len(rec.runs) != 3 || len(seen) != 3 {
			t.Errorf("ran %v, want each of 3 tokens once", rec.runs)
		}
		// Run already: queueing it again is still ignored.
		if err := q.Enqueue(ctx, got[0]); err != nil {
			t.Fatal(err)
		}
		stop = run(q, rec.work)
		time.Sleep(300 * time.Millisecond)
		stop()
		if len(rec.runs) != 3 {
			t.Errorf("a token that ran was run again: %v", rec.runs)
		}
	})
	t.Run("interrupted by shutdown runs again elsewhere", func(t *testing.T) {
		url := pgtest.URL(t)
		a := openPG(t, url, riverq.Options{Workers: 1, Grace: 50 * time.Millisecond})
		b := openPG(t, url, riverq.Options{Workers: 1})
		started := make(chan struct{}, 1)
		recA := newRecorder(func(ctx context.Context, token string) error {
			started <- struct{}{}
			<-ctx.Done() // never finishes by itself
			return fmt.Errorf("%w: %v", engine.ErrInterrupted, ctx.Err())
		})
		tok := "0123456789abcdef0123456789abcdef"
		if err := a.Enqueue(ctx, tok); err != nil {
			t.Fatal(err)
		}
		stopA := run(a, recA.work)
		<-started
		stopA() // the grace passes, the work is cancelled, the job is snoozed
		recB := newRecorder(nil)
		stopB := run(b, recB.work)
		defer stopB()
		if got := recB.wait(t, 1); got[0] != tok {
			t.Errorf("the other process ran %v, want %s", got, tok)
		}
	})
	t.Run("two processes share the queue", func(t *testing.T) {
		url := pgtest.URL(t)
		a := openPG(t, url, riverq.Options{Workers: 1})
		b := openPG(t, url, riverq.Options{Workers: 1})
		ranBy := make(chan string, 20)
		slow := func(name string) func(context.Context, string) error {
			return func(ctx context.Context, token string) error {
				time.Sleep(100 * time.Millisecond)
				ranBy <- name
				return nil
			}
		}
		const n = 8
		for i := range n {
			if err := a.Enqueue(ctx, fmt.Sprintf("%032d", i)); err != nil {
				t.Fatal(err)
			}
		}
		stopA, stopB := run(a, slow("a")), run(b, slow("b"))
		defer stopA()
		defer stopB()
		count := map[string]int{}
		for range n {
			select {
			case name := <-ranBy:
				count[name]++
			case <-time.After(10 * time.Second):
				t.Fatalf("ran %v, want %d tasks", count, n)
			}
		}
		if count["a"] == 0 || count["b"] == 0 {
			t.Errorf("runs per process %v: want both to work", count)
		}
	})
	t.Run("a running task renews its lease", func(t *testing.T) {
		url := pgtest.URL(t)
		a := openPG(t, url, riverq.Options{Workers: 1, Lease: 500 * time.Millisecond})
		pool := poolFor(t, url)
		started := make(chan struct{})
		release := make(chan struct{})
		var workErr error
		rec := newRecorder(func(ctx context.Context, token string) error {
			close(started)
			<-release
			workErr = ctx.Err() // River's job timeout is the lease: not the work's
			return nil
		})
		if err := a.Enqueue(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
		stop := run(a, rec.work)
		defer stop()
		<-started
		attempted := func() time.Time {
			var at time.Time
			if err := pool.QueryRow(ctx, `SELECT attempted_at FROM river_job WHERE kind = $1`, riverq.Kind).Scan(&at); err != nil {
				t.Fatal(err)
			}
			return at
		}
		first := attempted()
		time.Sleep(time.Second)
		if later := attempted(); !later.After(first.Add(200 * time.Millisecond)) {
			t.Errorf("attempted_at went from %v to %v in 1s: the lease was not renewed", first, later)
		}
		close(release)
		rec.wait(t, 1)
		if workErr != nil {
			t.Errorf("the work's context ended with the lease: %v", workErr)
		}
	})
	t.Run("the task of a process that died runs elsewhere within its lease", func(t *testing.T) {
		url := pgtest.URL(t)
		a := openPG(t, url, riverq.Options{Workers: 1})
		pool := poolFor(t, url)
		tok := "0123456789abcdef0123456789abcdef"
		if err := a.Enqueue(ctx, tok); err != nil {
			t.Fatal(err)
		}
		// As a process killed mid-task leaves it: running, its lease
		// renewed last 20 s ago.
		if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
			attempted_at = now() - interval '20 seconds', attempted_by = '{dead}' WHERE kind = $1`, riverq.Kind); err != nil {
			t.Fatal(err)
		}
		b := openPG(t, url, riverq.Options{Workers: 1, Lease: 10 * time.Second})
		rec := newRecorder(nil)
		began := time.Now()
		stop := run(b, rec.work)
		defer stop()
		select {
		case got := <-rec.ran:
			if got != tok {
				t.Errorf("ran %s, want %s", got, tok)
			}
			t.Logf("rescued and run %v after the other process started", time.Since(began).Round(time.Millisecond))
		case <-time.After(40 * time.Second):
			var state string
			var errs []byte
			_ = pool.QueryRow(ctx, `SELECT state, coalesce(errors::text, '') FROM river_job WHERE kind = $1`, riverq.Kind).Scan(&state, &errs)
			t.Fatalf("the dead process's task was not run again; job %s, errors %s", state, errs)
		}
	})
}

// poolFor opens a connection pool on url, for looking at River's tables.
func poolFor(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestPostgresLen checks that the queue depth counts the tasks waiting,
// not the callbacks.
func TestPostgresLen(t *testing.T) {
	ctx := context.Background()
	q := openPG(t, pgtest.URL(t), riverq.Options{})
	for i := range 2 {
		if err := q.Enqueue(ctx, fmt.Sprintf("%032d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Callbacks().Add(ctx, callback.Job{TaskToken: "t", Event: engine.EventSaved, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(ctx); n != 2 || err != nil {
		t.Errorf("Len = %d, %v; want 2", n, err)
	}
}
