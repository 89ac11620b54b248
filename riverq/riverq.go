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
//
// A task, or a part of one, is given up (engine.Retrier) once, when its
// job's last attempt fails. On PostgreSQL a job whose last attempt is lost
// with the process running it (killed) is discarded by River's rescuer
// instead; every queue looks for such jobs while it runs, and one of them
// gives their tasks up.
package riverq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	// Lease, when positive, is how long a running task's job may go
	// without being renewed before River's rescuer takes its process for
	// dead and makes it available to another: the process running it
	// renews it (the job's attempted_at) every fifth of Lease. 0: a running
	// job is rescued only after Timeout + Grace + 5 minutes (24 h without a
	// Timeout). For PostgreSQL, where several processes share the queue;
	// NewSQLite ignores it.
	Lease  time.Duration
	Logger *slog.Logger
}

// Queue is an engine.Queue on River. TTx is the driver's transaction type.
type Queue[TTx any] struct {
	client *river.Client[TTx]
	driver riverdriver.Driver[TTx]
	opts   Options
	work   atomic.Pointer[func(ctx context.Context, token string) error]
	part   atomic.Pointer[func(ctx context.Context, p engine.Part) error]
	giveUp atomic.Pointer[func(ctx context.Context, token string, err error)]
	parts  *partStore                      // PostgreSQL: the record of the parts done; nil: tasks are not spread
	hard   atomic.Pointer[context.Context] // with a lease: ends when a stop's grace is over

	callbacks  *Callbacks[TTx]
	discarded  *discardedJobs                         // PostgreSQL: jobs discarded without a give-up; nil on SQLite, which has none
	countTasks func(ctx context.Context) (int, error) // Len's query, on the driver's database
}

var (
	_ engine.Queue   = (*Queue[any])(nil)
	_ engine.Retrier = (*Queue[any])(nil)
)

// SetGiveUp implements engine.Retrier: giveUp is called when the last of
// Options.MaxAttempts attempts of a task's job, or of a part's, failed,
// or, on PostgreSQL, was lost with the process running it (River's
// rescuer discarded the job): once per job, by one of the processes
// sharing the database.
func (q *Queue[TTx]) SetGiveUp(giveUp func(ctx context.Context, token string, err error)) {
	q.giveUp.Store(&giveUp)
}

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
	q.callbacks = &Callbacks[TTx]{q: q}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(q.runJob))
	river.AddWorker(workers, river.WorkFunc(q.runPartJob))
	river.AddWorker(workers, &callbackWorker[TTx]{c: q.callbacks})
	// A job still running after rescue is taken for the job of a worker
	// that died, and run again.
	timeout, rescue := opts.Timeout, 24*time.Hour
	switch {
	case opts.Lease > 0:
		// River rescues only a job past its job timeout: that is the
		// lease, and the task's own time limit is runJob's, on a context
		// of the queue's (see runJob).
		timeout, rescue = opts.Lease, opts.Lease
	case timeout > 0:
		rescue = opts.Timeout + opts.Grace + 5*time.Minute
	default:
		timeout = -1 // River: no limit
	}
	q.client, err = river.NewClient(driver, &river.Config{
		ID: clientID(),
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: opts.Workers},
			CallbackKind:       {MaxWorkers: callbackWorkers},
		},
		Workers:              workers,
		JobTimeout:           timeout,
		RescueStuckJobsAfter: rescue,
		SoftStopTimeout:      opts.Grace,
		MaxAttempts:          opts.MaxAttempts,
		FetchPollInterval:    opts.Poll,
		FetchCooldown:        min(opts.Poll, 10*time.Millisecond), // an insert wakes a worker within this
		Logger:               riverLogger(opts),
	})
	if err != nil {
		return nil, fmt.Errorf("riverq: %w", err)
	}
	return q, nil
}

// clients counts the River clients this process made.
var clients atomic.Int32

// clientID is the ID of a new River client, which River records in the
// attempted_by of the jobs it runs: MadeBy, the name thumbd_part records
// parts under, and for a second client in the same process (tests) a
// number after it, since River wants each client's ID its own.
func clientID() string {
	if n := clients.Add(1); n > 1 {
		return fmt.Sprintf("%s#%d", MadeBy(), n)
	}
	return MadeBy()
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
// at once. On PostgreSQL it also gives up, while it runs, the tasks of the
// jobs River discarded after their last attempt was lost.
func (q *Queue[TTx]) Run(ctx context.Context, work func(ctx context.Context, token string) error) error {
	q.work.Store(&work)
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if q.opts.Grace <= 0 {
			cancel()
			return
		}
		t := time.AfterFunc(q.opts.Grace, cancel)
		context.AfterFunc(hard, func() { t.Stop() })
	})
	defer stop()
	q.hard.Store(&hard)
	events, unsubscribe := q.client.Subscribe(river.EventKindJobCancelled)
	watched := make(chan struct{})
	go func() { defer close(watched); q.callbacks.watchGiveUps(events) }()
	defer func() { unsubscribe(); <-watched }()
	if err := q.client.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return fmt.Errorf("riverq: starting River: %w", err)
	}
	if q.discarded != nil {
		wctx, stopWatch := context.WithCancel(ctx)
		watching := make(chan struct{})
		go func() { defer close(watching); q.watchDiscarded(wctx) }()
		defer func() { stopWatch(); <-watching }()
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
	return q.runWork(ctx, job.JobRow, job.Args.Token, "", func(ctx context.Context) error { return (*work)(ctx, job.Args.Token) })
}

// runPartJob runs one part job.
func (q *Queue[TTx]) runPartJob(ctx context.Context, job *river.Job[PartArgs]) error {
	work := q.part.Load()
	if work == nil {
		return river.JobSnooze(time.Second)
	}
	p := job.Args.part()
	return q.runWork(ctx, job.JobRow, p.Token, p.String(), func(ctx context.Context) error { return (*work)(ctx, p) })
}

// runWork runs a job's work (what, when not empty, names the part of the
// task it makes): under the lease, when the queue has one, and snoozed
// when shutdown interrupted it. When its last attempt fails, or panics,
// the task is given up (SetGiveUp).
func (q *Queue[TTx]) runWork(ctx context.Context, job *rivertype.JobRow, token, what string, run func(ctx context.Context) error) (err error) {
	if job.Attempt >= job.MaxAttempts {
		defer func() {
			if r := recover(); r != nil {
				q.gaveUp(ctx, job, token, what, fmt.Errorf("panic: %v", r))
				panic(r) // River logs it and records the attempt
			}
			if err != nil && !errors.Is(err, engine.ErrInterrupted) && !isSnooze(err) {
				q.gaveUp(ctx, job, token, what, err)
			}
		}()
	}
	if q.opts.Lease > 0 {
		// River's context ends with the lease: the work's ends when the
		// queue stops (after its grace) or at the task's time limit.
		hard := q.hard.Load()
		if hard == nil {
			return river.JobSnooze(time.Second)
		}
		wctx, cancel := context.WithCancel(*hard)
		defer cancel()
		if q.opts.Timeout > 0 {
			wctx, cancel = context.WithTimeout(wctx, q.opts.Timeout)
			defer cancel()
		}
		ctx = wctx
		defer q.renew(ctx, job.ID)()
	}
	err = run(ctx)
	if errors.Is(err, engine.ErrInterrupted) {
		// Available again at once, for the next worker that starts; not
		// counted as an attempt.
		return river.JobSnooze(0)
	}
	return err
}

// gaveUp tells the engine that the last attempt of a job failed. On
// PostgreSQL it marks the job first (givenUpKey), so that no queue gives
// its task up again once River has discarded it.
func (q *Queue[TTx]) gaveUp(ctx context.Context, job *rivertype.JobRow, token, what string, err error) {
	if q.giveUp.Load() == nil {
		return
	}
	if what != "" {
		err = fmt.Errorf("%s failed %d times: %w", what, job.Attempt, err)
	} else {
		err = fmt.Errorf("it failed %d times: %w", job.Attempt, err)
	}
	if q.discarded != nil {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if merr := q.discarded.mark(mctx, job.ID); merr != nil {
			q.opts.Logger.Warn("marking a job given up", "job", job.ID, "err", merr)
		}
		cancel()
	}
	q.tellGiveUp(ctx, token, "giving up a task after its last attempt", err)
}

// tellGiveUp logs msg and calls the give-up function (SetGiveUp) with
// token and err.
func (q *Queue[TTx]) tellGiveUp(ctx context.Context, token, msg string, err error) {
	giveUp := q.giveUp.Load()
	if giveUp == nil {
		return
	}
	q.opts.Logger.Error(msg, "task", engine.Redact(token), "err", err)
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	(*giveUp)(gctx, token, err)
}

// isSnooze reports whether err is River's snooze, which is no failure.
func isSnooze(err error) bool {
	var s *river.JobSnoozeError
	return errors.As(err, &s)
}

// riverLogger is the logger River gets. With a lease River's job timeout
// is the lease, and River warns of every task that runs past it ("appears
// to be stuck"): a long task is not stuck while its lease is renewed, so
// those lines are dropped.
func riverLogger(opts Options) *slog.Logger {
	if opts.Lease <= 0 {
		return opts.Logger
	}
	return slog.New(leaseFilter{opts.Logger.Handler()})
}

// leaseFilter drops River's lines about jobs past their job timeout.
type leaseFilter struct{ slog.Handler }

func (f leaseFilter) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasSuffix(r.Message, "Job appears to be stuck") || strings.HasSuffix(r.Message, "Job became unstuck") {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f leaseFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return leaseFilter{f.Handler.WithAttrs(as)}
}

func (f leaseFilter) WithGroup(name string) slog.Handler {
	return leaseFilter{f.Handler.WithGroup(name)}
}

// renew keeps a running job's lease, when the queue has one, until the
// function it returns is called: it sets the job's attempted_at, which
// River's rescuer reads, to now every fifth of the lease.
func (q *Queue[TTx]) renew(ctx context.Context, id int64) func() {
	if q.opts.Lease <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(q.opts.Lease / 5)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, q.opts.Lease/5)
			err := q.driver.GetExecutor().Exec(rctx, `UPDATE river_job SET attempted_at = now() WHERE id = $1 AND state = 'running'`, id)
			rcancel()
			if err != nil && ctx.Err() == nil {
				q.opts.Logger.Warn("renewing a running task's lease", "job", id, "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Len returns how many task jobs wait to run (available, scheduled or to
// be retried), in the whole database: the queue depth. Callback jobs are
// not counted.
func (q *Queue[TTx]) Len(ctx context.Context) (int, error) {
	if q.countTasks == nil {
		return 0, errors.New("riverq: this queue cannot count its tasks")
	}
	n, err := q.countTasks(ctx)
	if err != nil {
		return 0, fmt.Errorf("riverq: counting queued tasks: %w", err)
	}
	return n, nil
}

// countWaiting is the query of Len, with the job kind as its one
// parameter ($1 is read as the first parameter by both databases).
const countWaiting = `SELECT count(*) FROM river_job WHERE kind = $1 AND state IN ('available', 'scheduled', 'retryable')`

// Purge implements engine.Queue: it deletes every task job that is not
// running.
func (q *Queue[TTx]) Purge(ctx context.Context) error {
	if err := q.deleteJobs(ctx, PartKind); err != nil {
		return err
	}
	return q.deleteJobs(ctx, Kind)
}

// deleteJobs deletes every job of kind that is not running.
func (q *Queue[TTx]) deleteJobs(ctx context.Context, kind string) error {
	for {
		res, err := q.client.JobDeleteMany(ctx, river.NewJobDeleteManyParams().Kinds(kind).First(1000).States(
			rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable,
			rivertype.JobStatePending, rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded))
		if err != nil {
			return fmt.Errorf("riverq: deleting %s jobs: %w", kind, err)
		}
		if len(res.Jobs) == 0 {
			return nil
		}
	}
}
