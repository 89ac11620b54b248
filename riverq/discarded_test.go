package riverq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/riverq"
)

// giveUps records the give-up calls of one or more queues.
type giveUps struct {
	mu    sync.Mutex
	calls []giveUpCall
}

type giveUpCall struct {
	by, token, err string
}

func (g *giveUps) watch(by string, q engine.Retrier) {
	q.SetGiveUp(func(ctx context.Context, token string, err error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.calls = append(g.calls, giveUpCall{by, token, err.Error()})
	})
}

func (g *giveUps) all() []giveUpCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]giveUpCall(nil), g.calls...)
}

// of returns the calls for token.
func (g *giveUps) of(token string) []giveUpCall {
	var out []giveUpCall
	for _, c := range g.all() {
		if c.token == token {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls until cond holds, failing the test with what() after the
// deadline.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killOnLastAttempt leaves the job of kind whose token (and, for a part,
// index) is given as a process killed during the job's last attempt
// leaves it: running, at its last attempt, its lease not renewed for 20 s.
func killOnLastAttempt(t *testing.T, pool *pgxpool.Pool, kind, token string, part int) {
	t.Helper()
	tag, err := pool.Exec(context.Background(), `UPDATE river_job SET state = 'running', attempt = max_attempts,
		attempted_at = now() - interval '20 seconds', attempted_by = '{dead}'
		WHERE kind = $1 AND args ->> 'token' = $2 AND coalesce((args ->> 'part')::int, 0) = $3`, kind, token, part)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("marking %s %s as killed: %v, %d rows", kind, token, err, tag.RowsAffected())
	}
}

// discard leaves a task job as River's rescuer leaves one it discarded,
// as if the queues had not run since.
func discard(t *testing.T, pool *pgxpool.Pool, token string) {
	t.Helper()
	tag, err := pool.Exec(context.Background(), `UPDATE river_job SET state = 'discarded', attempt = max_attempts,
		attempted_at = now(), finalized_at = now() WHERE kind = $1 AND args ->> 'token' = $2 AND state = 'scheduled'`, riverq.Kind, token)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("discarding %s: %v, %d rows", token, err, tag.RowsAffected())
	}
}

// hold queues a task job that no queue runs until discard: scheduled in
// an hour. A token whose job was discarded is queued again.
func hold(t *testing.T, q *riverq.Queue[pgx.Tx], pool *pgxpool.Pool, token string) {
	t.Helper()
	if err := q.Enqueue(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	tag, err := pool.Exec(context.Background(), `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour'
		WHERE id = (SELECT max(id) FROM river_job WHERE kind = $1 AND args ->> 'token' = $2 AND state = 'available')`, riverq.Kind, token)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("holding %s: %v, %d rows", token, err, tag.RowsAffected())
	}
}

// jobStates returns "kind token[/part]: state given-up" for every task and
// part job.
func jobStates(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT kind, args ->> 'token', coalesce(args ->> 'part', ''), state,
		coalesce(metadata ->> 'thumbd_given_up', '-') FROM river_job WHERE kind IN ($1, $2) ORDER BY id`, riverq.Kind, riverq.PartKind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind, token, part, state, given string
		if err := rows.Scan(&kind, &token, &part, &state, &given); err != nil {
			t.Fatal(err)
		}
		if part != "" {
			token += "/" + part
		}
		out = append(out, fmt.Sprintf("%s %s: %s %s", kind, token, state, given))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unhandled counts the discarded task and part jobs not marked given up.
func unhandled(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind IN ($1, $2)
		AND state = 'discarded' AND metadata ->> 'thumbd_given_up' IS NULL`, riverq.Kind, riverq.PartKind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLastAttemptLostWithItsProcess leaves a task job and a part job as a
// process killed during their last attempt leaves them: River's real
// rescuer discards them, and the queue gives up each one's task once, with
// an error that says what happened (naming the part). A task whose last
// attempt failed in the queue's own run is given up once, by that run, not
// again once River has discarded its job.
func TestLastAttemptLostWithItsProcess(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	q := openPG(t, url, riverq.Options{Workers: 1, Lease: time.Second})
	pool := poolFor(t, url)
	dead, deadPart, failing, later := engine.NewToken(), engine.NewToken(), engine.NewToken(), engine.NewToken()
	for _, tok := range []string{dead, failing} {
		if err := q.Enqueue(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.EnqueueParts(ctx, []engine.Part{
		{Token: deadPart, Index: 0, Parts: 2, First: 0, Count: 3},
		{Token: deadPart, Index: 1, Parts: 2, First: 3, Count: 2},
	}); err != nil {
		t.Fatal(err)
	}
	hold(t, q, pool, later)
	killOnLastAttempt(t, pool, riverq.Kind, dead, 0)
	killOnLastAttempt(t, pool, riverq.PartKind, deadPart, 1)
	// failing's next attempt is its last, and fails.
	if _, err := pool.Exec(ctx, `UPDATE river_job SET attempt = max_attempts - 1 WHERE kind = $1 AND args ->> 'token' = $2`, riverq.Kind, failing); err != nil {
		t.Fatal(err)
	}
	var g giveUps
	g.watch("q", q)
	var partsRun sync.Map
	q.SetPartWork(func(ctx context.Context, p engine.Part) error {
		partsRun.Store(p.Index, true)
		return nil
	})
	rec := newRecorder(func(ctx context.Context, token string) error {
		if token == failing {
			return errors.New("database unavailable")
		}
		return nil
	})
	stop := run(q, rec.work)
	defer stop()

	waitFor(t, 60*time.Second, func() bool {
		return len(g.of(dead)) > 0 && len(g.of(deadPart)) > 0 && len(g.of(failing)) > 0 && unhandled(t, pool) == 0 &&
			strings.Count(strings.Join(jobStates(t, pool), "\n"), "discarded true") == 3
	}, func() string {
		return fmt.Sprintf("gave up %v; jobs %q", g.all(), jobStates(t, pool))
	})
	// A job discarded now is found by the queue's next look, which so
	// comes after failing's job was discarded.
	discard(t, pool, later)
	waitFor(t, 30*time.Second, func() bool { return len(g.of(later)) > 0 }, func() string {
		return fmt.Sprintf("a job discarded while the queue runs was not given up: %v; jobs %q", g.all(), jobStates(t, pool))
	})

	want := map[string]string{
		dead:     "the thumbd instance running it stopped during its last attempt (10 of 10)",
		deadPart: "part 2 of 2 (outputs 3 to 4): the thumbd instance running it stopped during its last attempt (10 of 10)",
		failing:  "it failed 10 times: database unavailable",
		later:    "the thumbd instance running it stopped during its last attempt (10 of 10)",
	}
	if calls := g.all(); len(calls) != len(want) {
		t.Errorf("gave up %v, want each of %d tasks once", calls, len(want))
	}
	for tok, err := range want {
		if calls := g.of(tok); len(calls) != 1 || calls[0].err != err {
			t.Errorf("gave up %s with %v, want once with %q", tok, calls, err)
		}
	}
	if unhandled(t, pool) != 0 {
		t.Errorf("discarded jobs not marked given up: %q", jobStates(t, pool))
	}
	rec.mu.Lock()
	ran := append([]string(nil), rec.runs...)
	rec.mu.Unlock()
	if len(ran) != 1 || ran[0] != failing {
		t.Errorf("ran tasks %v, want only the failing one (the killed one's job is discarded)", ran)
	}
	if _, ok := partsRun.Load(1); ok {
		t.Error("the part whose last attempt was lost ran again")
	}
}

// TestDiscardedGivenUpOnceByTwoProcesses runs two queues on one database
// while River's rescuer discards jobs whose last attempt was lost: each
// job's task is given up once in total, and a task queued again since its
// job was discarded (as a restart does) is not given up.
func TestDiscardedGivenUpOnceByTwoProcesses(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	a := openPG(t, url, riverq.Options{Workers: 1, Lease: time.Second})
	b := openPG(t, url, riverq.Options{Workers: 1, Lease: time.Second})
	pool := poolFor(t, url)
	var g giveUps
	g.watch("a", a)
	g.watch("b", b)
	const n = 12
	var dead []string
	for range n {
		tok := engine.NewToken()
		if err := a.Enqueue(ctx, tok); err != nil {
			t.Fatal(err)
		}
		killOnLastAttempt(t, pool, riverq.Kind, tok, 0)
		dead = append(dead, tok)
	}
	part := engine.NewToken()
	if err := a.EnqueueParts(ctx, []engine.Part{{Token: part, Index: 0, Parts: 1, First: 0, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	killOnLastAttempt(t, pool, riverq.PartKind, part, 0)
	dead = append(dead, part)
	// requeued's job was discarded, and the task queued again since.
	requeued := engine.NewToken()
	hold(t, a, pool, requeued)
	discard(t, pool, requeued)
	hold(t, a, pool, requeued)
	var sentinels []string
	for range 40 {
		tok := engine.NewToken()
		hold(t, a, pool, tok)
		sentinels = append(sentinels, tok)
	}
	for _, q := range []*riverq.Queue[pgx.Tx]{a, b} {
		q.SetPartWork(func(context.Context, engine.Part) error { return nil })
	}
	rec := newRecorder(nil)
	stopA, stopB := run(a, rec.work), run(b, rec.work)
	defer stopA()
	defer stopB()
	waitFor(t, 60*time.Second, func() bool { return len(g.all()) >= len(dead) && unhandled(t, pool) == 0 }, func() string {
		return fmt.Sprintf("gave up %v; jobs %q", g.all(), jobStates(t, pool))
	})
	// Discard jobs one by one until each queue has given one up: both
	// have then looked after the killed jobs were discarded.
	by := map[string]bool{}
	for i, tok := range sentinels {
		discard(t, pool, tok)
		waitFor(t, 30*time.Second, func() bool { return len(g.of(tok)) > 0 }, func() string {
			return fmt.Sprintf("discarded job %d was not given up: %v", i, g.all())
		})
		by[g.of(tok)[0].by] = true
		if by["a"] && by["b"] {
			sentinels = sentinels[:i+1]
			break
		}
	}
	if !by["a"] || !by["b"] {
		t.Errorf("of %d jobs discarded one by one, only %v gave one up", len(sentinels), by)
	}
	calls := g.all()
	if len(calls) != len(dead)+len(sentinels) {
		t.Errorf("%d give-ups, want %d (each job once): %v", len(calls), len(dead)+len(sentinels), calls)
	}
	for _, tok := range append(dead, sentinels...) {
		if c := g.of(tok); len(c) != 1 {
			t.Errorf("%s given up %d times: %v", tok, len(c), c)
		}
	}
	if c := g.of(requeued); len(c) != 0 {
		t.Errorf("a task queued again after its job was discarded was given up: %v", c)
	}
	if c := g.of(part); len(c) == 1 && !strings.HasPrefix(c[0].err, "part 1 of 1 (outputs 0 to 0): ") {
		t.Errorf("the part was given up with %q, want it named", c[0].err)
	}
	t.Logf("give-ups by a and b: %v", by)
}
