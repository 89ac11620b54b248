package api

import "github.com/thumbd/thumbd/engine"

// ParseQuery decodes a start_encode2 query ({"query": {...}}) into a
// validated engine.Spec, as start_encode2 does; the error's message names
// the field to fix. For running a query without the server (thumbd run).
func ParseQuery(raw string) (engine.Spec, error) {
	return decodeQuery(raw)
}
