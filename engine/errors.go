package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

// Errors returned by the engine's methods. Package api maps each to a
// Qencode error code in one place.
var (
	ErrBadAPIKey     = errors.New("api key is malformed")
	ErrUnknownAPIKey = errors.New("api key not found")
	ErrBadToken      = errors.New("token is malformed")
	ErrTokenNotFound = errors.New("token not found")
	ErrTaskStarted   = errors.New("task has already been started")
	ErrShuttingDown  = errors.New("server is shutting down")
	ErrBusy          = errors.New("the task queue is full, try again later") // a Queue that is full
)

// ErrInterrupted wraps the error of a task stopped by shutdown: it stays
// queued and runs again. A Queue treats it apart from other failures.
var ErrInterrupted = errors.New("task interrupted")

// ValidationError reports a spec field that is missing or invalid.
type ValidationError struct {
	Field  string // as the user wrote it, e.g. "format[1].interval"
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// Why a running task stops: the causes of its context's end.
var (
	// errTaskTimeout ends a task that runs past Config.TaskTimeout.
	errTaskTimeout = errors.New("task time limit reached")
	// errForgotten ends a task that Reset forgets while it runs.
	errForgotten = errors.New("task forgotten")
)

// sourceError is a source the task cannot use: it cannot be opened or
// read, or ffmpeg finds it unusable (*ffmpeg.SourceError). Its message, the
// task's error description, tells the user what is wrong.
type sourceError struct {
	Reason string
	Err    error
}

func (e *sourceError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%v)", e.Reason, e.Err)
	}
	return e.Reason
}

func (e *sourceError) Unwrap() error { return e.Err }

// asSourceError turns ffmpeg's account of an unusable source into the
// engine's; other errors, wrapped ones included, are returned as they are.
func asSourceError(err error) error {
	if fe, ok := err.(*ffmpeg.SourceError); ok {
		return &sourceError{Reason: fe.Reason, Err: fe.Err}
	}
	return err
}

// timeLimitError is a task stopped because it ran past its time limit:
// Config.TaskTimeout, or the queue's own deadline behind it.
type timeLimitError struct {
	Limit time.Duration // 0: the queue's, not known here
}

func (e *timeLimitError) Error() string {
	limit := "for one task"
	if e.Limit > 0 {
		limit = fmt.Sprintf("of %v (THUMBD_TASK_TIMEOUT)", e.Limit)
	}
	return fmt.Sprintf("the task took longer than this server's time limit %s and was stopped; a source that answers slowly is the usual cause", limit)
}

func (e *timeLimitError) Unwrap() error { return errTaskTimeout }
