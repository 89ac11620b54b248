package api

import "github.com/thumbd/thumbd/engine"

// ParseQuery decodes a start_encode2 query ({"query": {...}}) into a
// validated engine.Spec, as start_encode2 does; the error's message names
// the field to fix. For running a query without the server (thumbd run).
func ParseQuery(raw string) (engine.Spec, error) {
	return decodeQuery(raw)
}

// TaskStatus renders a task's snapshot as /v1/status renders it, with
// base as the server's public URL.
func TaskStatus(token string, s engine.Snapshot, base string) any {
	return toStatusJSON(token, s, base)
}
