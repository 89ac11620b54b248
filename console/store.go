package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
)

// StoreBackend is the Backend of a thumbd process: the tasks in its
// engine.Store and the callbacks its notifier sent.
type StoreBackend struct {
	Store engine.Store
	// Status renders a task's snapshot as /v1/status does, for a server
	// reached at base.
	Status func(snap engine.Snapshot, base string) any
	// Callbacks returns the callbacks sent, oldest first; nil: none are
	// shown.
	Callbacks func() []callback.Delivery
}

var _ Backend = (*StoreBackend)(nil)

// Tasks implements Backend.
func (b *StoreBackend) Tasks(ctx context.Context, f Filter) ([]Task, error) {
	tf := engine.TaskFilter{Limit: f.Limit}
	if f.Key != "" {
		tf.Owner = engine.KeyOwner(f.Key)
	}
	for _, s := range f.States {
		tf.States = append(tf.States, engine.State(s))
	}
	recs, err := b.Store.Tasks(ctx, tf)
	if err != nil {
		return nil, err
	}
	out := make([]Task, len(recs))
	for i, r := range recs {
		out[i] = summary(r)
	}
	return out, nil
}

// Task implements Backend.
func (b *StoreBackend) Task(ctx context.Context, s Scope, token string) (Detail, error) {
	rec, err := b.Store.Task(ctx, token)
	if errors.Is(err, engine.ErrTokenNotFound) || err == nil && s.Key != "" && rec.Owner != engine.KeyOwner(s.Key) {
		return Detail{}, ErrNotFound
	}
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Task: summary(rec), Query: json.RawMessage("null"), Callbacks: []Callback{}}
	if rec.Spec != nil && rec.Spec.Query != "" {
		d.Query = RedactQuery(rec.Spec.Query)
	}
	st, err := json.Marshal(b.Status(rec.Snap, s.Base))
	if err != nil {
		return Detail{}, err
	}
	d.StatusJSON = st
	if b.Callbacks != nil {
		for _, c := range b.Callbacks() {
			if c.TaskToken != token {
				continue
			}
			cb := Callback{Event: string(c.Event), URL: RedactURL(c.URL), Code: c.Code, Attempts: len(c.Attempts),
				Delivered: c.Delivered, Done: c.Done}
			if n := len(c.Attempts); n > 0 {
				last := c.Attempts[n-1]
				cb.Error = last.Error
				at := last.At.UTC()
				cb.At = &at
			}
			d.Callbacks = append(d.Callbacks, cb)
		}
	}
	return d, nil
}

// summary is a task's line in the list.
func summary(r engine.TaskRecord) Task {
	t := Task{Token: r.Token, Created: r.Created.UTC(), Status: string(r.Snap.State), Percent: r.Snap.Percent,
		Images: len(r.Snap.Images), Videos: len(r.Snap.Videos), Error: r.Snap.Error}
	if !r.Ended.IsZero() {
		e := r.Ended.UTC()
		t.Ended = &e
	}
	if r.Spec != nil {
		t.Source = hidePassword(r.Spec.Source)
		for _, o := range r.Spec.Outputs {
			t.Outputs = append(t.Outputs, string(o.Kind))
		}
	}
	return t
}

// hidePassword hides the password of a URL that carries one (as ***).
func hidePassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	u.User = url.User(u.User.Username())
	user := u.User.String() + "@"
	return strings.Replace(u.String(), user, strings.TrimSuffix(user, "@")+":***@", 1)
}

// RedactURL keeps a URL's scheme and host: its path and query may carry
// secrets (a callback URL's often do).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "…"
	}
	out := u.Scheme + "://" + u.Host + "/"
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		out += "…"
	}
	return out
}

// secretFields are the query fields whose values are never shown: a
// destination's credentials.
var secretFields = map[string]bool{"key": true, "secret": true}

// RedactQuery returns a query as JSON with the fields order kept, the
// credentials of its destinations shortened (engine.Redact) and its
// callback_url cut to its host. A query that is not JSON comes back as a
// JSON string.
func RedactQuery(query string) json.RawMessage {
	dec := json.NewDecoder(strings.NewReader(query))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := redactValue(dec, &buf, "", false); err != nil {
		b, _ := json.Marshal(query)
		return b
	}
	if _, err := dec.Token(); err != io.EOF {
		b, _ := json.Marshal(query)
		return b
	}
	return buf.Bytes()
}

// redactValue copies the next JSON value from dec to buf. key is the name
// the value has in its object; inDest says it lies within a destination.
func redactValue(dec *json.Decoder, buf *bytes.Buffer, key string, inDest bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			buf.WriteByte('{')
			for first := true; dec.More(); first = false {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				name, ok := k.(string)
				if !ok {
					return errors.New("object key is not a string")
				}
				if !first {
					buf.WriteByte(',')
				}
				writeString(buf, name)
				buf.WriteByte(':')
				if err := redactValue(dec, buf, name, inDest || name == "destination"); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return err
			}
			buf.WriteByte('}')
		case '[':
			buf.WriteByte('[')
			for first := true; dec.More(); first = false {
				if !first {
					buf.WriteByte(',')
				}
				if err := redactValue(dec, buf, key, inDest); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			buf.WriteByte(']')
		}
	case string:
		switch {
		case inDest && secretFields[key]:
			v = engine.Redact(v)
		case key == "callback_url":
			v = RedactURL(v)
		case key == "source":
			v = hidePassword(v)
		}
		writeString(buf, v)
	case json.Number:
		buf.WriteString(v.String())
	case bool:
		if v {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case nil:
		buf.WriteString("null")
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}
