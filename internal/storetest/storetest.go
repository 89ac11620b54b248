// Package storetest is the contract every engine.Store must keep, run by
// the tests of each store package against MemoryStore and itself.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// Tok returns a token made of c repeated.
func Tok(c byte) string { return strings.Repeat(string(c), 32) }

// T0 is the tests' reference time.
var T0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// StartedRecord returns a started task with a spec that uses every kind
// of field a store must keep.
func StartedRecord(token string, created time.Time) engine.TaskRecord {
	ft := 0.5
	st := 1500 * time.Millisecond
	return engine.TaskRecord{
		Token:   token,
		Created: created,
		Owner:   "0123456789abcdef",
		Spec: &engine.Spec{Source: "https://example.com/a.mp4", CallbackURL: "http://cb.example/x", Payload: `{"a":1}`,
			Query: `{"query": {"source": "https://example.com/a.mp4", "format": []}}`,
			Outputs: []engine.Output{
				{Kind: engine.KindThumbnail, Time: &ft, Width: 320, Format: engine.JPEG,
					Destinations: []storage.Destination{{URL: "s3://h/b/k.jpg", Key: "AKIA", Secret: "s3cr3t"}}},
				{Kind: engine.KindThumbnail, StartTime: &st},
				{Kind: engine.KindThumbnails, Interval: 2 * time.Second, Sprite: true, Columns: 4},
			}},
		Snap: engine.Snapshot{State: engine.StateQueued, Payload: `{"a":1}`},
	}
}

// Run runs the same steps against each store, which must be fresh and
// empty: every engine.Store must agree with MemoryStore.
func Run(t *testing.T, stores map[string]func(t *testing.T) engine.Store) {
	ctx := context.Background()
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			if err := s.PutSession(ctx, Tok('1'), engine.Session{Expires: T0.Add(time.Hour), Owner: "o1"}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutSession(ctx, Tok('2'), engine.Session{Expires: T0.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Session(ctx, Tok('1')); err != nil || !got.Expires.Equal(T0.Add(time.Hour)) || got.Owner != "o1" {
				t.Errorf("Session = %+v, %v", got, err)
			}
			if _, err := s.Session(ctx, Tok('9')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("unknown session: %v", err)
			}

			// a: created, never started, old. b: started, queued. c: ended long ago.
			// d: ended just now. e: started later than b, running.
			created := engine.TaskRecord{Token: Tok('a'), Created: T0.Add(-48 * time.Hour), Snap: engine.Snapshot{State: engine.StateCreated}}
			recs := []engine.TaskRecord{created, StartedRecord(Tok('b'), T0), StartedRecord(Tok('c'), T0.Add(-50*time.Hour)),
				StartedRecord(Tok('d'), T0.Add(-time.Hour)), StartedRecord(Tok('e'), T0.Add(time.Minute))}
			for i, owner := range []string{"o1", "o1", "o2", "o1", "o2"} {
				recs[i].Owner = owner
			}
			for _, r := range recs {
				if err := s.CreateTask(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Task(ctx, Tok('b'))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Spec, recs[1].Spec) || got.Snap.State != engine.StateQueued || !got.Created.Equal(T0) || got.Owner != "o1" {
				t.Errorf("Task(b) = %+v\nwant %+v", got, recs[1])
			}
			end := func(token string, at time.Time, st engine.State) {
				err := s.UpdateTask(ctx, token, func(r *engine.TaskRecord) error {
					r.Snap.State, r.Ended = st, at
					r.Snap.Images = append(r.Snap.Images, engine.Image{Kind: engine.KindImage, Format: "png", Width: 2, Height: 2,
						Location: storage.Location{Type: "local", Key: token + "/x.png"},
						Frames:   []engine.Frame{{Requested: time.Second, Actual: 1040 * time.Millisecond, Keyframe: true}}})
					r.Snap.Warnings = append(r.Snap.Warnings, engine.Warning{Message: "m", Details: "d"})
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			end(Tok('c'), T0.Add(-49*time.Hour), engine.StateCompleted)
			end(Tok('d'), T0.Add(-time.Minute), engine.StateError)
			if err := s.UpdateTask(ctx, Tok('e'), func(r *engine.TaskRecord) error { r.Snap.State = engine.StateEncoding; return nil }); err != nil {
				t.Fatal(err)
			}
			// A failing update changes nothing.
			boom := errors.New("boom")
			if err := s.UpdateTask(ctx, Tok('e'), func(r *engine.TaskRecord) error { r.Snap.State = engine.StateError; return boom }); !errors.Is(err, boom) {
				t.Errorf("UpdateTask returned %v, want boom", err)
			}
			if err := s.UpdateTask(ctx, Tok('9'), func(*engine.TaskRecord) error { return nil }); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("UpdateTask(unknown) = %v", err)
			}
			if got, _ := s.Task(ctx, Tok('e')); got.Snap.State != engine.StateEncoding {
				t.Errorf("state after a failed update = %s", got.Snap.State)
			}
			if got, _ := s.Task(ctx, Tok('c')); len(got.Snap.Images) != 1 || got.Snap.Images[0].Frames[0].Actual != 1040*time.Millisecond || !got.Ended.Equal(T0.Add(-49*time.Hour)) {
				t.Errorf("Task(c) = %+v", got)
			}

			listTasks(ctx, t, s)

			unfinished, err := s.Unfinished(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{Tok('b'), Tok('e')}; !slices.Equal(unfinished, want) {
				t.Errorf("Unfinished = %v, want %v", unfinished, want)
			}
			expired, err := s.Expired(ctx, T0.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{Tok('a'), Tok('c')}; !slices.Equal(expired, want) {
				t.Errorf("Expired = %v, want %v", expired, want)
			}
			if err := s.DeleteTask(ctx, Tok('c')); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Task(ctx, Tok('c')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("deleted task: %v", err)
			}
			if err := s.DeleteTask(ctx, Tok('c')); err != nil {
				t.Errorf("deleting twice: %v", err)
			}
			if err := s.DeleteSessions(ctx, T0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Session(ctx, Tok('2')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("expired session kept: %v", err)
			}
			if _, err := s.Session(ctx, Tok('1')); err != nil {
				t.Errorf("live session deleted: %v", err)
			}

			forgot, err := s.Reset(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{Tok('a'), Tok('b'), Tok('d'), Tok('e')}; !slices.Equal(forgot, want) {
				t.Errorf("Reset forgot %v, want %v", forgot, want)
			}
			if _, err := s.Task(ctx, Tok('b')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("task after reset: %v", err)
			}
			if _, err := s.Session(ctx, Tok('1')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("session after reset: %v", err)
			}
		})
	}
}

// listTasks checks Tasks against the records Run made: a (o1, created,
// T0-48h), b (o1, queued, T0), c (o2, completed, T0-50h), d (o1, error,
// T0-1h), e (o2, encoding, T0+1m).
func listTasks(ctx context.Context, t *testing.T, s engine.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    engine.TaskFilter
		want string // the tokens' letters, in order
	}{
		{"all, newest first", engine.TaskFilter{}, "ebdac"},
		{"limit", engine.TaskFilter{Limit: 2}, "eb"},
		{"owner", engine.TaskFilter{Owner: "o1"}, "bda"},
		{"unknown owner", engine.TaskFilter{Owner: "o3"}, ""},
		{"states", engine.TaskFilter{States: []engine.State{engine.StateError, engine.StateCompleted}}, "dc"},
		{"one state", engine.TaskFilter{States: []engine.State{engine.StateCreated}}, "a"},
		{"owner and state", engine.TaskFilter{Owner: "o2", States: []engine.State{engine.StateEncoding, engine.StateQueued}}, "e"},
		{"owner, state and limit", engine.TaskFilter{Owner: "o1", States: []engine.State{engine.StateQueued, engine.StateError, engine.StateCreated}, Limit: 2}, "bd"},
	} {
		got, err := s.Tasks(ctx, tc.f)
		if err != nil {
			t.Fatalf("Tasks(%s): %v", tc.name, err)
		}
		letters := ""
		for _, r := range got {
			letters += r.Token[:1]
		}
		if letters != tc.want {
			t.Errorf("Tasks(%s) = %q, want %q", tc.name, letters, tc.want)
		}
		for _, r := range got {
			if r.Token == Tok('d') && (r.Snap.State != engine.StateError || len(r.Snap.Images) != 1 || r.Spec == nil || r.Spec.Query == "") {
				t.Errorf("Tasks(%s) gave d as %+v", tc.name, r)
			}
		}
	}
}
