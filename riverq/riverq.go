// Package riverq runs thumbd's tasks through River (github.com/riverqueue/river),
// a job queue kept in a database: SQLite through River's riversqlite driver
// for the embedded default, and, with the same code, PostgreSQL through
// riverpgxv5 when several thumbd workers share one database.
//
// River brings what a hand-written queue would have to grow: retries with
// backoff of a task whose run failed for a reason outside it (the database
// was unavailable), a time limit per task, a soft stop on shutdown that
// lets running tasks finish for a grace period before cancelling them, and
// uniqueness (a task token is queued at most once). A task interrupted by
// shutdown is snoozed (River's JobSnooze(0)): it stays available and runs
// first when a worker starts again, without counting as an attempt.
package riverq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/thumbd/thumbd/engine"
)

// Kind is the River job kind of a thumbd task.
const Kind = "thumbd_task"

// TaskArgs are a task job's arguments: the task token. Everything else
// about the task is in the engine's store.
type TaskArgs struct {
	Token string `json:"token"`
}

// Kind implements river.JobArgs.
func (TaskArgs) Kind() string { return Kind }

// InsertOpts implements river.JobArgsWithInsertOpts: a token is queued at
// most once.
func (TaskArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Options configures a Queue.
type Options struct {
	Workers     int           // tasks run at once by this process; default 1
	Grace       time.Duration // how long a stop lets running tasks finish before cancelling them; 0: cancel at once
	Timeout     time.Duration // time limit of one task; 0: none
	MaxAttempts int           // runs of a task whose run fails outside the task; default 10
	Poll        time.Duration // how often the database is polled for new tasks; default 1s
	Logger      *slog.Logger
}

// Queue is an engine.Queue on River. TTx is the driver's transaction type.
type Queue[TTx any] struct {
	client *river.Client[TTx]
	driver riverdriver.Driver[TTx]
	opts   Options
	work   atomic.Pointer[func(ctx context.Context, token string) error]
}

var _ engine.Queue = (*Queue[any])(nil)

// New migrates the database to River's latest schema and returns a Queue
// on it.
func New[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], opts Options) (*Queue[TTx], error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("riverq: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("riverq: migrating River's tables: %w", err)
	}
	q := &Queue[TTx]{driver: driver, opts: opts}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(q.runJob))
	timeout := opts.Timeout
	rescue := 24 * time.Hour
	if timeout <= 0 {
		timeout = -1 // River: no limit
	} else {
		// A job still running after this is taken for the job of a worker
		// that died, and run again.
		rescue = opts.Timeout + opts.Grace + 5*time.Minute
	}
	q.client, err = river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}},
		Workers:              workers,
		JobTimeout:           timeout,
		RescueStuckJobsAfter: rescue,
		SoftStopTimeout:      opts.Grace,
		MaxAttempts:          opts.MaxAttempts,
		FetchPollInterval:    opts.Poll,
		FetchCooldown:        min(opts.Poll, 100*time.Millisecond),
		Logger:               opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("riverq: %w", err)
	}
	return q, nil
}

// Client returns the River client, for inspection.
func (q *Queue[TTx]) Client() *river.Client[TTx] { return q.client }

// Enqueue implements engine.Queue. A token already queued, running or run
// is not queued again.
func (q *Queue[TTx]) Enqueue(ctx context.Context, token string) error {
	if _, err := q.client.Insert(ctx, TaskArgs{Token: token}, nil); err != nil {
		return fmt.Errorf("riverq: queueing task %s: %w", engine.Redact(token), err)
	}
	return nil
}

// Run implements engine.Queue: it starts River's client and returns once
// it has stopped after ctx ended. Options.Workers is how many tasks it runs
// at once.
func (q *Queue[TTx]) Run(ctx context.Context, work func(ctx context.Context, token string) error) error {
	q.work.Store(&work)
	if err := q.client.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return fmt.Errorf("riverq: starting River: %w", err)
	}
	<-q.client.Stopped()
	return nil
}

// runJob runs one task job.
func (q *Queue[TTx]) runJob(ctx context.Context, job *river.Job[TaskArgs]) error {
	work := q.work.Load()
	if work == nil {
		return river.JobSnooze(time.Second)
	}
	err := (*work)(ctx, job.Args.Token)
	if errors.Is(err, engine.ErrInterrupted) {
		// Available again at once, for the next worker that starts; not
		// counted as an attempt.
		return river.JobSnooze(0)
	}
	return err
}

// Purge implements engine.Queue: it deletes every task job that is not
// running.
func (q *Queue[TTx]) Purge(ctx context.Context) error {
	for {
		res, err := q.client.JobDeleteMany(ctx, river.NewJobDeleteManyParams().Kinds(Kind).First(1000).States(
			rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable,
			rivertype.JobStatePending, rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded))
		if err != nil {
			return fmt.Errorf("riverq: purging the queue: %w", err)
		}
		if len(res.Jobs) == 0 {
			return nil
		}
	}
}
