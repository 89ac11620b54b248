// Package taskrow is how thumbd's SQL stores (sqlitestore, pgstore) lay an
// engine.TaskRecord out in a row: times as Unix nanoseconds, the spec and
// the status as JSON documents with a version (see Version). Both stores
// share it so that a row written by one reads the same in the other.
package taskrow

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// Row is a task as stored: the columns token, created_at, ended_at, spec,
// snap and owner, in that order (see Dest and Columns).
type Row struct {
	Token   string
	Created int64   // Unix nanoseconds
	Ended   *int64  // Unix nanoseconds; nil while the task runs
	Spec    *string // JSON; nil until the task is started
	Snap    string  // JSON
	Owner   string  // engine.KeyOwner of the key that created it; "" when unknown
}

// Columns are the columns Dest scans, in its order.
const Columns = "token, created_at, ended_at, spec, snap, owner"

// Nanos is how times are stored.
func Nanos(t time.Time) int64 { return t.UnixNano() }

// FromNanos reads a stored time.
func FromNanos(n int64) time.Time { return time.Unix(0, n) }

// Encode lays rec out as a row.
func Encode(rec engine.TaskRecord) (Row, error) {
	r := Row{Token: rec.Token, Created: Nanos(rec.Created), Owner: rec.Owner}
	if !rec.Ended.IsZero() {
		n := Nanos(rec.Ended)
		r.Ended = &n
	}
	if rec.Spec != nil {
		b, err := json.Marshal(toSpecDoc(*rec.Spec))
		if err != nil {
			return r, fmt.Errorf("encoding a spec: %w", err)
		}
		s := string(b)
		r.Spec = &s
	}
	b, err := json.Marshal(toSnapDoc(rec.Snap))
	if err != nil {
		return r, fmt.Errorf("encoding a status: %w", err)
	}
	r.Snap = string(b)
	return r, nil
}

// Dest returns the scan destinations for Columns.
func (r *Row) Dest() []any { return []any{&r.Token, &r.Created, &r.Ended, &r.Spec, &r.Snap, &r.Owner} }

// Decode turns a row back into a record. A row of a later Version than
// this package knows is refused.
func (r Row) Decode() (engine.TaskRecord, error) {
	rec := engine.TaskRecord{Token: r.Token, Created: FromNanos(r.Created), Owner: r.Owner}
	if r.Ended != nil {
		rec.Ended = FromNanos(*r.Ended)
	}
	if r.Spec != nil {
		var d specDoc
		if err := decode(*r.Spec, &d); err != nil {
			return rec, fmt.Errorf("task %s: decoding its spec: %w", engine.Redact(r.Token), err)
		}
		spec := d.spec()
		rec.Spec = &spec
	}
	var d snapDoc
	if err := decode(r.Snap, &d); err != nil {
		return rec, fmt.Errorf("task %s: decoding its status: %w", engine.Redact(r.Token), err)
	}
	rec.Snap = d.snapshot()
	return rec, nil
}

// decode reads a stored document into d, refusing one of a version this
// package cannot read even where the JSON decoded (json.Unmarshal goes on
// past a value of the wrong type). Version 1 is the only layout yet: a
// later one would be chosen here, by version, before decoding.
func decode(doc string, d versioned) error {
	err := json.Unmarshal([]byte(doc), d)
	if _, verr := checkVersion(d.version()); verr != nil {
		return verr
	}
	return err
}
