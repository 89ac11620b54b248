package riverq

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thumbd/thumbd/engine"
)

// givenUpKey is the key a task or part job's metadata gets, set to true,
// once its task was given up for it (SetGiveUp), by runWork after the
// job's last attempt failed or by a queue's look for discarded jobs: of
// several processes on one database, only the one that sets it gives the
// task up.
const givenUpKey = "thumbd_given_up"

// discardedBatch is how many discarded jobs one statement takes.
const discardedBatch = 100

// discardedJobs finds, on PostgreSQL, the task and part jobs River
// discarded without their task being given up: a job whose last attempt
// (Options.MaxAttempts) ran in a process that died is discarded by River's
// rescuer, and no process's runWork gives its task up. A job is marked
// (givenUpKey) before its task is given up, by runWork or by a queue's
// look: a process that dies in between leaves the task unfinished until
// an engine starts again and queues it again. A task queued again since
// its job was discarded is not given up: it runs.
//
// A queue on SQLite has none: one process owns the file, and NewSQLite
// makes the jobs a dead process left running available again before River
// starts, so they run again (and are given up by runWork when that run
// fails) instead of being rescued; River's rescuer discards there only a
// job that has been running in the live process for longer than Timeout
// plus Grace plus five minutes (24 hours without a Timeout), and runWork
// gives its task up when its work returns.
type discardedJobs struct {
	pool *pgxpool.Pool
}

// discardedJob is a discarded job taken by claim.
type discardedJob struct {
	id          int64
	kind        string
	args        []byte
	attempt     int
	maxAttempts int
	// superseded: a newer task job of the same token waits or runs (the
	// task was queued again, as a restart does): the task is not given up.
	superseded bool
}

// claimDiscarded marks with givenUpKey, in one statement, up to
// discardedBatch discarded task and part jobs without it, and returns
// them: a job is returned to one caller only, whichever process calls.
const claimDiscarded = `UPDATE river_job j SET metadata = j.metadata || jsonb_build_object('` + givenUpKey + `', true)
WHERE j.id IN (
	SELECT id FROM river_job
	WHERE state = 'discarded' AND finalized_at IS NOT NULL AND kind IN ($1, $2)
		AND metadata -> '` + givenUpKey + `' IS NULL
	ORDER BY id LIMIT $3
	FOR UPDATE SKIP LOCKED)
RETURNING j.id, j.kind, j.args, j.attempt, j.max_attempts,
	EXISTS (SELECT 1 FROM river_job n WHERE n.kind = $1 AND n.id > j.id
		AND n.args ->> 'token' = j.args ->> 'token'
		AND n.state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))`

// claim takes the discarded jobs not yet given up (claimDiscarded).
func (d *discardedJobs) claim(ctx context.Context) ([]discardedJob, error) {
	rows, err := d.pool.Query(ctx, claimDiscarded, Kind, PartKind, discardedBatch)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (j discardedJob, err error) {
		err = row.Scan(&j.id, &j.kind, &j.args, &j.attempt, &j.maxAttempts, &j.superseded)
		return j, err
	})
}

// mark records that the task of the running job id is being given up, so
// that no process gives it up again once River has discarded the job.
func (d *discardedJobs) mark(ctx context.Context, id int64) error {
	_, err := d.pool.Exec(ctx, `UPDATE river_job SET metadata = metadata || jsonb_build_object('`+givenUpKey+`', true) WHERE id = $1`, id)
	return err
}

// discardedEvery is how often a queue looks for discarded jobs: every
// Lease, between a second and 30 seconds (River's rescuer, which discards
// them, looks every 30 seconds); every 30 seconds without a Lease, when
// River rescues a job only after hours.
func discardedEvery(lease time.Duration) time.Duration {
	if lease <= 0 {
		return 30 * time.Second
	}
	return min(max(lease, time.Second), 30*time.Second)
}

// watchDiscarded gives up, until ctx ends, the task of each task or part
// job River discarded without its task being given up (discardedJobs):
// at once, then every discardedEvery.
func (q *Queue[TTx]) watchDiscarded(ctx context.Context) {
	t := time.NewTicker(discardedEvery(q.opts.Lease))
	defer t.Stop()
	for {
		q.giveUpDiscarded(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// giveUpDiscarded gives up the tasks of the discarded jobs it claims.
func (q *Queue[TTx]) giveUpDiscarded(ctx context.Context) {
	if q.giveUp.Load() == nil {
		return // nobody to tell: the jobs are left for a queue that has
	}
	for {
		jobs, err := q.discarded.claim(ctx)
		if err != nil {
			if ctx.Err() == nil {
				q.opts.Logger.Warn("looking for tasks whose last attempt was lost", "err", err)
			}
			return
		}
		for _, j := range jobs {
			q.giveUpLost(ctx, j)
		}
		if len(jobs) < discardedBatch {
			return
		}
	}
}

// giveUpLost gives up the task of a job whose last attempt ended with the
// process running it, unless the task was queued again since.
func (q *Queue[TTx]) giveUpLost(ctx context.Context, j discardedJob) {
	var args PartArgs // a task's arguments are its token alone
	if err := json.Unmarshal(j.args, &args); err != nil || args.Token == "" {
		q.opts.Logger.Error("a discarded job's arguments are unreadable", "job", j.id, "kind", j.kind, "err", err)
		return
	}
	if j.superseded {
		q.opts.Logger.Info("a task whose job was discarded is queued again: not given up", "task", engine.Redact(args.Token), "job", j.id)
		return
	}
	err := fmt.Errorf("the thumbd instance running it stopped during its last attempt (%d of %d)", j.attempt, j.maxAttempts)
	if j.kind == PartKind {
		err = fmt.Errorf("%s: %w", args.part(), err)
	}
	q.tellGiveUp(ctx, args.Token, "giving up a task whose last attempt was lost with its instance", err)
}
