package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/thumbd/thumbd/engine"
)

// Qencode's callback fields.
const (
	cbTaskToken    = "task_token"
	cbEvent        = "event"
	cbCallbackType = "callback_type"
	cbStatus       = "status"
	cbPayload      = "payload"
	cbErrorCode    = "error_code"
	cbErrorMessage = "error_message"
)

// CallbackForm returns the function that turns a task event into the form
// fields Qencode posts to a callback_url: task_token, event (queued, error or
// saved), callback_type ("task"), status (a JSON string of the same object
// /v1/status returns for the task), payload (the start_encode2 payload,
// verbatim) and, for an error event, error_code and error_message. base is
// the public URL of this server, for status_url and the URLs of kept files.
func CallbackForm(base func() string) func(engine.Event) (url.Values, error) {
	return func(ev engine.Event) (url.Values, error) {
		var st bytes.Buffer
		enc := json.NewEncoder(&st)
		enc.SetEscapeHTML(false) // as /v1/status writes it
		if err := enc.Encode(toStatusJSON(ev.Token, ev.Snap, base())); err != nil {
			return nil, err
		}
		v := url.Values{}
		v.Set(cbTaskToken, ev.Token)
		v.Set(cbEvent, string(ev.Kind))
		v.Set(cbCallbackType, "task")
		v.Set(cbStatus, strings.TrimSuffix(st.String(), "\n"))
		v.Set(cbPayload, ev.Spec.Payload)
		if ev.Kind == engine.EventError {
			v.Set(cbErrorCode, strconv.Itoa(codeInternal))
			v.Set(cbErrorMessage, ev.Snap.Error)
		}
		return v, nil
	}
}
