package engine

import (
	"errors"
	"fmt"
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
)

// ValidationError reports a spec field that is missing or invalid.
type ValidationError struct {
	Field  string // as the user wrote it, e.g. "format[1].interval"
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}
