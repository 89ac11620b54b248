package engine

import "time"

// Observer is told what the engine does, for metrics (package
// internal/metrics implements it). Its methods are called on the task's
// goroutines and must return quickly.
type Observer interface {
	// TaskQueued: a task was started and queued.
	TaskQueued()
	// TaskEnded: a task ended, StateCompleted or StateError, took after
	// a worker took it up (an interrupted task is not counted).
	TaskEnded(outcome State, took time.Duration)
	// OutputMade: an output's files were made, took after the making of
	// the task's outputs began (outputs are made together).
	OutputMade(kind OutputKind, took time.Duration)
	// FileStored: a file was uploaded to a destination ("s3") or kept by
	// thumbd ("local"); err is why it was not.
	FileStored(storage string, err error)
}

// nopObserver is the Observer of an Engine given none.
type nopObserver struct{}

func (nopObserver) TaskQueued()                          {}
func (nopObserver) TaskEnded(State, time.Duration)       {}
func (nopObserver) OutputMade(OutputKind, time.Duration) {}
func (nopObserver) FileStored(string, error)             {}

// Len returns how many tasks wait in the queue, not counting those
// running: the queue depth.
func (q *MemoryQueue) Len() int { return len(q.ch) }
