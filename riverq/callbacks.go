package riverq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
)

// CallbackKind is the River job kind of one callback delivery; its jobs
// run in the River queue of the same name, beside the tasks' queue.
const CallbackKind = "thumbd_callback"

// CallbackArgs are a callback job's arguments: the delivery as rendered
// when its event happened, so that any process can make it.
type CallbackArgs struct {
	TaskToken string     `json:"task_token"`
	Event     string     `json:"event"`
	URL       string     `json:"url"`
	Fields    url.Values `json:"fields"`
}

// Kind implements river.JobArgs.
func (CallbackArgs) Kind() string { return CallbackKind }

// InsertOpts implements river.JobArgsWithInsertOpts: its own queue, and
// attempts bounded by the Handler's retry time, not by River's count.
func (CallbackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: CallbackKind, MaxAttempts: callbackMaxAttempts}
}

const (
	callbackMaxAttempts = 10000
	// callbackWait is how long a delivery waits while an earlier one of
	// its task is not finished, before looking again.
	callbackWait = time.Second
	// callbackWorkers is how many deliveries a process attempts at once.
	callbackWorkers = 10
)

// callbackOutput is what a callback job records of its attempts (River's
// recorded output, kept in the job's metadata), the latest last, and
// whether the last was final: stored as soon as an attempt ends, before
// River records the job's new state.
type callbackOutput struct {
	Attempts []callback.Attempt `json:"attempts"`
	Final    bool               `json:"final,omitempty"`
}

// Callbacks is the callback.Queue of a Queue: callback deliveries as River
// jobs in the same database as the tasks.
type Callbacks[TTx any] struct {
	q       *Queue[TTx]
	handler atomic.Pointer[callback.Handler]
	cleared atomic.Int64 // List shows only jobs after this one (Clear)
}

var _ callback.Queue = (*Callbacks[any])(nil)

// Callbacks returns the queue's callback.Queue. Its jobs are worked while
// Run runs.
func (q *Queue[TTx]) Callbacks() *Callbacks[TTx] { return q.callbacks }

// Handle implements callback.Queue.
func (c *Callbacks[TTx]) Handle(h callback.Handler) { c.handler.Store(&h) }

// Add implements callback.Queue.
func (c *Callbacks[TTx]) Add(ctx context.Context, j callback.Job) error {
	args := CallbackArgs{TaskToken: j.TaskToken, Event: string(j.Event), URL: j.URL, Fields: j.Fields}
	if _, err := c.q.client.Insert(ctx, args, nil); err != nil {
		return fmt.Errorf("riverq: queueing a callback of task %s: %w", engine.Redact(j.TaskToken), err)
	}
	return nil
}

// List implements callback.Queue: the latest limit callback jobs, in every
// state River keeps them (completed and cancelled ones for River's
// retention, 24 h by default).
func (c *Callbacks[TTx]) List(ctx context.Context, limit int) ([]callback.Delivery, error) {
	if limit <= 0 {
		limit = 1000
	}
	res, err := c.q.client.JobList(ctx, river.NewJobListParams().Kinds(CallbackKind).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(limit))
	if err != nil {
		return nil, fmt.Errorf("riverq: listing callbacks: %w", err)
	}
	out := make([]callback.Delivery, 0, len(res.Jobs))
	for _, job := range slices.Backward(res.Jobs) {
		if job.ID <= c.cleared.Load() {
			continue
		}
		d, err := delivery(job)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// delivery is what the inspector shows of a callback job.
func delivery(job *rivertype.JobRow) (callback.Delivery, error) {
	var args CallbackArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
		return callback.Delivery{}, fmt.Errorf("riverq: callback job %d: %w", job.ID, err)
	}
	out := output(job)
	d := callback.Delivery{ID: int(job.ID), TaskToken: args.TaskToken, Event: engine.EventKind(args.Event),
		URL: netguard.ShowURL(args.URL), Fields: args.Fields, Attempts: out.Attempts}
	if d.Fields == nil {
		d.Fields = url.Values{}
	}
	last := callback.Attempt{Error: "none"}
	if n := len(d.Attempts); n > 0 {
		last = d.Attempts[n-1]
		d.Code = last.Code
	}
	switch job.State {
	case rivertype.JobStateCompleted:
		d.Delivered, d.Done = true, true
	case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		d.Done = true
	default: // its last attempt just ended, and River has not recorded it yet
		d.Done = out.Final
		d.Delivered = out.Final && last.Error == ""
	}
	return d, nil
}

// output reads what a callback job recorded.
func output(job *rivertype.JobRow) callbackOutput {
	var out callbackOutput
	if b := job.Output(); len(b) > 0 {
		_ = json.Unmarshal(b, &out) // an unreadable record shows no attempts
	}
	return out
}

// attempts reads the attempts a callback job recorded.
func attempts(job *rivertype.JobRow) []callback.Attempt { return output(job).Attempts }

// Clear implements callback.Queue: it deletes the callback jobs not
// running, and List no longer shows the ones running.
func (c *Callbacks[TTx]) Clear(ctx context.Context) error {
	if err := c.q.deleteJobs(ctx, CallbackKind); err != nil {
		return err
	}
	res, err := c.q.client.JobList(ctx, river.NewJobListParams().Kinds(CallbackKind).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(1))
	if err != nil {
		return fmt.Errorf("riverq: listing callbacks: %w", err)
	}
	if len(res.Jobs) > 0 {
		c.cleared.Store(res.Jobs[0].ID)
	}
	return nil
}

// callbackWorker works callback jobs through the Handler.
type callbackWorker[TTx any] struct {
	river.WorkerDefaults[CallbackArgs]
	c *Callbacks[TTx]
}

// NextRetry is the Handler's backoff after the attempt that just failed.
func (w *callbackWorker[TTx]) NextRetry(job *river.Job[CallbackArgs]) time.Time {
	if h := w.c.handler.Load(); h != nil {
		return time.Now().Add((*h).Backoff(job.Attempt))
	}
	return time.Now().Add(callbackWait)
}

// Timeout bounds one attempt, which the Handler's HTTP client bounds
// already.
func (w *callbackWorker[TTx]) Timeout(*river.Job[CallbackArgs]) time.Duration { return time.Minute }

// Work makes one attempt at a delivery once every earlier delivery of its
// task is finished, and records it. A failed attempt is returned as the
// job's error, for River to retry after NextRetry; a final one cancels the
// job, and the Handler is told once that is recorded (watchGiveUps).
func (w *callbackWorker[TTx]) Work(ctx context.Context, job *river.Job[CallbackArgs]) error {
	h := w.c.handler.Load()
	if h == nil {
		return river.JobSnooze(callbackWait)
	}
	earlier, err := w.c.q.client.JobList(ctx, river.NewJobListParams().Kinds(CallbackKind).First(1).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled).
		Where("id < @id AND args ->> 'task_token' = @token", river.NamedArgs{"id": job.ID, "token": job.Args.TaskToken}))
	if err != nil {
		return fmt.Errorf("looking for the task's earlier callbacks: %w", err)
	}
	if len(earlier.Jobs) > 0 {
		return river.JobSnooze(callbackWait)
	}
	prior := attempts(job.JobRow)
	a, final := (*h).Try(ctx, callback.Job{TaskToken: job.Args.TaskToken, Event: engine.EventKind(job.Args.Event),
		URL: job.Args.URL, Fields: job.Args.Fields}, prior)
	if err := river.RecordOutput(ctx, callbackOutput{Attempts: append(prior, a), Final: final}); err != nil {
		return err
	}
	// Stored now, not only with the job's new state, which River records
	// a little later: the inspector shows the attempt as soon as it ends.
	if _, err := w.c.q.client.JobUpdate(context.WithoutCancel(ctx), job.ID, &river.JobUpdateParams{}); err != nil {
		w.c.q.opts.Logger.Warn("recording a callback attempt", "job", job.ID, "err", err)
	}
	switch {
	case a.Error == "":
		return nil
	case final:
		return river.JobCancel(errors.New(a.Error))
	default:
		return errors.New(a.Error)
	}
}

// watchGiveUps tells the Handler of each callback job cancelled (given up)
// by this process once River has recorded it, until events closes.
func (c *Callbacks[TTx]) watchGiveUps(events <-chan *river.Event) {
	for ev := range events {
		if ev.Job == nil || ev.Job.Kind != CallbackKind {
			continue
		}
		h := c.handler.Load()
		var args CallbackArgs
		if h == nil || json.Unmarshal(ev.Job.EncodedArgs, &args) != nil {
			continue
		}
		var last callback.Attempt
		if as := attempts(ev.Job); len(as) > 0 {
			last = as[len(as)-1]
		} else if n := len(ev.Job.Errors); n > 0 {
			last = callback.Attempt{At: ev.Job.Errors[n-1].At, Error: ev.Job.Errors[n-1].Error}
		}
		(*h).GaveUp(callback.Job{TaskToken: args.TaskToken, Event: engine.EventKind(args.Event), URL: args.URL, Fields: args.Fields}, last)
	}
}
