package api

import (
	"errors"
	"fmt"

	"github.com/thumbd/thumbd/engine"
)

// Qencode's API error codes.
const (
	codeOK            = 0
	codeInternal      = 1
	codeBadAPIKey     = 2
	codeAPIKeyUnknown = 3
	codeBadToken      = 4
	codeTokenNotFound = 5
	codeSystemBusy    = 8
	codeBadPayload    = 9
	codeBadTokens     = 13
	codeFieldRequired = 14
	codeQueryRequired = 19
	// codeNoMethod answers a path under /v1/ that is no API method, or a
	// verb a method does not take. Qencode documents no code for it; 1 is
	// its generic failure, which no client retries.
	codeNoMethod = codeInternal
)

// Error is an API error in Qencode's envelope: {"error": Code, "message": Message}.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// toError maps any error to the Qencode code a client expects. It is the
// only place where engine errors meet wire codes.
func toError(err error) *Error {
	var apiErr *Error
	var ve *engine.ValidationError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, errSlowBody):
		return errorf(codeFieldRequired, "the request body did not arrive in time: send it whole, at once")
	case errors.As(err, &ve):
		return errorf(codeFieldRequired, "%s", ve.Error())
	case errors.Is(err, engine.ErrBadAPIKey):
		return errorf(codeBadAPIKey, "Bad api_key: it must be at least %d characters without spaces", engine.MinAPIKeyLength)
	case errors.Is(err, engine.ErrUnknownAPIKey):
		return errorf(codeAPIKeyUnknown, "API key not found")
	case errors.Is(err, engine.ErrBadToken):
		return errorf(codeBadToken, "Bad token: a token is 32 hexadecimal characters")
	case errors.Is(err, engine.ErrTokenNotFound):
		// Qencode's Node SDK re-authenticates only on exactly this text.
		return errorf(codeTokenNotFound, "Token not found")
	case errors.Is(err, engine.ErrTaskStarted):
		return errorf(codeBadToken, "This task_token has already been used to start a task; call create_task for a new one")
	case errors.Is(err, engine.ErrBusy), errors.Is(err, engine.ErrShuttingDown):
		return errorf(codeSystemBusy, "System busy: %v", err)
	default:
		return errorf(codeInternal, "Internal error")
	}
}
