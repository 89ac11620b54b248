package engine

import (
	"context"
	"time"
)

// FileRemover is implemented by a FileStore that can delete what it keeps
// for a task (storage.Local does); Reset and the retention sweep use it.
type FileRemover interface {
	RemoveAll(prefix string) error
}

// track records a running task so that Reset can stop it.
func (e *Engine) track(ctx context.Context, token string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
	e.running[token] = cancel
	e.mu.Unlock()
	return ctx, func() {
		e.mu.Lock()
		delete(e.running, token)
		e.mu.Unlock()
		cancel(nil)
	}
}

// requeue queues again every task that was started and has not ended: after
// a crash, or a queue write that was lost. A queue that knows the task
// already ignores it.
func (e *Engine) requeue(ctx context.Context) error {
	tokens, err := e.store.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if err := e.queue.Enqueue(ctx, t); err != nil {
			return err
		}
	}
	if len(tokens) > 0 {
		e.log.Info("unfinished tasks queued again", "tasks", len(tokens))
	}
	return nil
}

// Reset forgets every task and access token and every file thumbd keeps:
// queued tasks are dropped and tasks under way are stopped.
func (e *Engine) Reset(ctx context.Context) error {
	if err := e.queue.Purge(ctx); err != nil {
		return err
	}
	tokens, err := e.store.Reset(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	for _, cancel := range e.running {
		cancel(errForgotten)
	}
	e.mu.Unlock()
	for _, t := range tokens {
		e.removeFiles(t)
	}
	e.log.Info("every task and token forgotten", "tasks", len(tokens))
	return nil
}

func (e *Engine) removeFiles(token string) {
	if r, ok := e.cfg.Files.(FileRemover); ok {
		if err := r.RemoveAll(token); err != nil {
			e.log.Warn("removing a task's files", "task", Redact(token), "err", err)
		}
	}
}

// Sweep forgets the access tokens that have expired and, with a retention
// period, the tasks that ended more than that ago, with the files thumbd
// keeps for them, and the tasks created that long ago and never started.
func (e *Engine) Sweep(ctx context.Context) error {
	now := e.cfg.Now()
	if err := e.store.DeleteSessions(ctx, now); err != nil {
		return err
	}
	if e.cfg.Retention <= 0 {
		return nil
	}
	tokens, err := e.store.Expired(ctx, now.Add(-e.cfg.Retention))
	if err != nil {
		return err
	}
	for _, t := range tokens {
		e.removeFiles(t)
		if err := e.store.DeleteTask(ctx, t); err != nil {
			return err
		}
	}
	if len(tokens) > 0 {
		e.log.Info("expired tasks forgotten", "tasks", len(tokens), "retention", e.cfg.Retention)
	}
	return nil
}

// sweepLoop runs Sweep now and then until ctx ends.
func (e *Engine) sweepLoop(ctx context.Context) {
	every := 10 * time.Minute // expired access tokens, whatever the retention
	if e.cfg.Retention > 0 {
		every = min(max(e.cfg.Retention/10, time.Second), every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("retention sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
