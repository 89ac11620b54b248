package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Part is a share of a task's outputs that runs as a job of its own: the
// outputs First to First+Count-1 of the task's spec. A task spread into
// Parts parts completes when every part is done.
type Part struct {
	Token string
	Index int // 0 .. Parts-1
	Parts int // how many parts the task was spread into
	First int // index of the part's first output
	Count int // how many outputs it makes
}

// Spreader is a Queue that can run a task's parts as jobs of their own, so
// that the processes sharing the queue make one task's outputs at once
// (riverq on PostgreSQL).
type Spreader interface {
	// EnqueueParts queues a task's parts; a part already queued, running
	// or done is not queued again.
	EnqueueParts(ctx context.Context, parts []Part) error
	// SetPartWork sets what runs a part; it is called before Run.
	SetPartWork(work func(ctx context.Context, p Part) error)
	// PartDone records p as done (by this process) and reports whether
	// every part of its task is. Of parts finishing at the same time, only
	// the last to record itself is told that all are done.
	PartDone(ctx context.Context, p Part) (all bool, err error)
}

// partRun is what a part being run collects instead of writing into the
// task's status: its entries, merged into the status when it ends.
type partRun struct {
	Part
	images []Image
	videos []Video
}

type partKey struct{}

// partOf returns the part ctx runs, or nil for a whole task.
func partOf(ctx context.Context) *partRun {
	p, _ := ctx.Value(partKey{}).(*partRun)
	return p
}

// has reports whether output i is one of the part's.
func (p *partRun) has(i int) bool { return i >= p.First && i < p.First+p.Count }

// spreads returns the parts a task is spread into, or nil when it runs as
// one job: spreading is on (Config.PartOutputs), the queue can run parts,
// and the task has more outputs than one part makes.
func (e *Engine) spreads(token string, spec Spec) []Part {
	n := e.cfg.PartOutputs
	if _, ok := e.queue.(Spreader); !ok || n <= 0 || len(spec.Outputs) <= n || onlyMetadata(spec) {
		return nil
	}
	var parts []Part
	for first := 0; first < len(spec.Outputs); first += n {
		parts = append(parts, Part{Token: token, Index: len(parts), First: first, Count: min(n, len(spec.Outputs)-first)})
	}
	for i := range parts {
		parts[i].Parts = len(parts)
	}
	return parts
}

// spread queues a task's parts in place of running it. The task is then
// encoding; each part merges its entries into its status as it ends, and
// the last one ends the task.
func (e *Engine) spread(ctx context.Context, token string, parts []Part) error {
	e.update(ctx, token, func(s *Snapshot) {
		if s.State == StateQueued {
			s.State = StateEncoding
			s.Percent = max(s.Percent, 5)
		}
	})
	if err := e.queue.(Spreader).EnqueueParts(ctx, parts); err != nil {
		return fmt.Errorf("queueing the parts of task %s: %w", Redact(token), err)
	}
	e.log.Info("task spread into parts", "task", Redact(token), "parts", len(parts))
	return nil
}

// runPart makes one part of a task and merges what it stored into the
// task's status; the part that finds every part done ends the task. A part
// that fails ends the task in error (once: the other parts then find it
// ended and do nothing). Like runTask, it returns an error wrapping
// ErrInterrupted for a part stopped by shutdown, and an error for a
// failure to read or write the store or the queue.
func (e *Engine) runPart(ctx context.Context, part Part) error {
	token := part.Token
	rec, err := e.claim(ctx, token)
	if rec == nil {
		return err
	}
	if part.First+part.Count > len(rec.Spec.Outputs) {
		return e.end(ctx, token, *rec.Spec, fmt.Errorf("part %d of the task names outputs it does not have", part.Index), 0)
	}
	ctx, untrack := e.track(ctx, fmt.Sprintf("%s#%d", token, part.Index))
	defer untrack()
	began := time.Now()
	pr := &partRun{Part: part}
	err = e.attemptPart(context.WithValue(ctx, partKey{}, pr), token, *rec.Spec, part)
	switch {
	case errors.Is(context.Cause(ctx), errForgotten):
		return nil
	case err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.log.Warn("part interrupted by shutdown; it stays queued", "task", Redact(token), "part", part.Index)
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	case err != nil:
		return e.end(ctx, token, *rec.Spec, err, time.Since(began))
	}
	uerr := e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if r.Snap.State.Done() {
			return errEnded
		}
		r.Snap.Images = slices.DeleteFunc(r.Snap.Images, func(im Image) bool { return pr.has(im.Output) })
		r.Snap.Videos = slices.DeleteFunc(r.Snap.Videos, func(v Video) bool { return pr.has(v.Output) })
		r.Snap.Images = append(r.Snap.Images, pr.images...)
		r.Snap.Videos = append(r.Snap.Videos, pr.videos...)
		slices.SortStableFunc(r.Snap.Images, func(a, b Image) int { return cmp.Or(a.Output-b.Output, a.N-b.N) })
		slices.SortStableFunc(r.Snap.Videos, func(a, b Video) int { return cmp.Or(a.Output-b.Output, a.N-b.N) })
		made := map[int]bool{}
		for _, im := range r.Snap.Images {
			made[im.Output] = true
		}
		for _, v := range r.Snap.Videos {
			made[v.Output] = true
		}
		r.Snap.Percent = max(r.Snap.Percent, min(99, 5+94*float64(len(made))/float64(max(1, len(r.Spec.Outputs)))))
		return nil
	})
	switch {
	case errors.Is(uerr, errEnded) || errors.Is(uerr, ErrTokenNotFound):
		return nil
	case uerr != nil:
		return fmt.Errorf("recording part %d of task %s: %w", part.Index, Redact(token), uerr)
	}
	all, err := e.queue.(Spreader).PartDone(context.WithoutCancel(ctx), part)
	if err != nil {
		return fmt.Errorf("recording part %d of task %s: %w", part.Index, Redact(token), err)
	}
	e.log.Debug("part done", "task", Redact(token), "part", part.Index, "parts", part.Parts, "took", time.Since(began))
	if !all {
		return nil
	}
	return e.end(ctx, token, *rec.Spec, nil, time.Since(rec.Created))
}

// attemptPart makes a part's outputs under the task's time limit, in a
// scratch directory of the part's own.
func (e *Engine) attemptPart(ctx context.Context, token string, spec Spec, part Part) error {
	if e.cfg.TaskTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, e.cfg.TaskTimeout, errTaskTimeout)
		defer cancel()
	}
	dir := filepath.Join(e.cfg.WorkDir, fmt.Sprintf("%s-p%d", token, part.Index))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	err := e.execute(ctx, token, spec, dir)
	if err != nil && errors.Is(context.Cause(ctx), errTaskTimeout) {
		return &timeLimitError{Limit: e.cfg.TaskTimeout}
	}
	return err
}

// errEnded stops an update of a task that has already ended.
var errEnded = errors.New("the task has ended")

// Retrier is a Queue that runs again, a limited number of times, the job
// of a task or part whose run failed outside the task (an error reading
// or writing the store or the queue). SetGiveUp sets what it calls once,
// after the last attempt failed (err is that attempt's error); it is
// called before Run. The engine then ends the task in error, so that it
// is not left encoding.
type Retrier interface {
	SetGiveUp(giveUp func(ctx context.Context, token string, err error))
}

// giveUp ends in error a task whose job (or one of whose parts) the queue
// gave up on after its last attempt failed. A task already ended, or
// forgotten, is left as it is.
func (e *Engine) giveUp(ctx context.Context, token string, cause error) {
	ctx = context.WithoutCancel(ctx)
	rec, err := e.store.Task(ctx, token)
	switch {
	case errors.Is(err, ErrTokenNotFound):
		return
	case err != nil:
		e.log.Error("ending a task the queue gave up on", "task", Redact(token), "err", err, "cause", cause)
		return
	case rec.Spec == nil || rec.Snap.State.Done():
		return
	}
	if err := e.end(ctx, token, *rec.Spec, fmt.Errorf("thumbd could not finish the task; try it again: %w", cause), time.Since(rec.Created)); err != nil {
		e.log.Error("ending a task the queue gave up on", "task", Redact(token), "err", err, "cause", cause)
	}
}
