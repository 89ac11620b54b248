package sqlitestore_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/sqlitestore"
	"github.com/thumbd/thumbd/storage"
)

func tok(c byte) string { return strings.Repeat(string(c), 32) }

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func startedRecord(token string, created time.Time) engine.TaskRecord {
	ft := 0.5
	st := 1500 * time.Millisecond
	return engine.TaskRecord{
		Token:   token,
		Created: created,
		Spec: &engine.Spec{Source: "https://example.com/a.mp4", CallbackURL: "http://cb.example/x", Payload: `{"a":1}`,
			Outputs: []engine.Output{
				{Kind: engine.KindThumbnail, Time: &ft, Width: 320, Format: engine.JPEG,
					Destinations: []storage.Destination{{URL: "s3://h/b/k.jpg", Key: "AKIA", Secret: "s3cr3t"}}},
				{Kind: engine.KindThumbnail, StartTime: &st},
				{Kind: engine.KindThumbnails, Interval: 2 * time.Second, Sprite: true, Columns: 4},
			}},
		Snap: engine.Snapshot{State: engine.StateQueued, Payload: `{"a":1}`},
	}
}

// stores returns each Store implementation, fresh.
func stores(t *testing.T) map[string]engine.Store {
	db, err := sqlitestore.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return map[string]engine.Store{"memory": engine.NewMemoryStore(), "sqlite": db}
}

// TestStoreContract runs the same steps against MemoryStore and the SQLite
// store: they must agree.
func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.PutSession(ctx, tok('1'), t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.PutSession(ctx, tok('2'), t0.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			if exp, err := s.Session(ctx, tok('1')); err != nil || !exp.Equal(t0.Add(time.Hour)) {
				t.Errorf("Session = %v, %v", exp, err)
			}
			if _, err := s.Session(ctx, tok('9')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("unknown session: %v", err)
			}

			// a: created, never started, old. b: started, queued. c: ended long ago.
			// d: ended just now. e: started later than b, running.
			created := engine.TaskRecord{Token: tok('a'), Created: t0.Add(-48 * time.Hour), Snap: engine.Snapshot{State: engine.StateCreated}}
			recs := []engine.TaskRecord{created, startedRecord(tok('b'), t0), startedRecord(tok('c'), t0.Add(-50*time.Hour)),
				startedRecord(tok('d'), t0.Add(-time.Hour)), startedRecord(tok('e'), t0.Add(time.Minute))}
			for _, r := range recs {
				if err := s.CreateTask(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Task(ctx, tok('b'))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Spec, recs[1].Spec) || got.Snap.State != engine.StateQueued || !got.Created.Equal(t0) {
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
			end(tok('c'), t0.Add(-49*time.Hour), engine.StateCompleted)
			end(tok('d'), t0.Add(-time.Minute), engine.StateError)
			if err := s.UpdateTask(ctx, tok('e'), func(r *engine.TaskRecord) error { r.Snap.State = engine.StateEncoding; return nil }); err != nil {
				t.Fatal(err)
			}
			// A failing update changes nothing.
			boom := errors.New("boom")
			if err := s.UpdateTask(ctx, tok('e'), func(r *engine.TaskRecord) error { r.Snap.State = engine.StateError; return boom }); !errors.Is(err, boom) {
				t.Errorf("UpdateTask returned %v, want boom", err)
			}
			if err := s.UpdateTask(ctx, tok('9'), func(*engine.TaskRecord) error { return nil }); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("UpdateTask(unknown) = %v", err)
			}
			if got, _ := s.Task(ctx, tok('e')); got.Snap.State != engine.StateEncoding {
				t.Errorf("state after a failed update = %s", got.Snap.State)
			}
			if got, _ := s.Task(ctx, tok('c')); len(got.Snap.Images) != 1 || got.Snap.Images[0].Frames[0].Actual != 1040*time.Millisecond || !got.Ended.Equal(t0.Add(-49*time.Hour)) {
				t.Errorf("Task(c) = %+v", got)
			}

			unfinished, err := s.Unfinished(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{tok('b'), tok('e')}; !slices.Equal(unfinished, want) {
				t.Errorf("Unfinished = %v, want %v", unfinished, want)
			}
			expired, err := s.Expired(ctx, t0.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{tok('a'), tok('c')}; !slices.Equal(expired, want) {
				t.Errorf("Expired = %v, want %v", expired, want)
			}
			if err := s.DeleteTask(ctx, tok('c')); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Task(ctx, tok('c')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("deleted task: %v", err)
			}
			if err := s.DeleteTask(ctx, tok('c')); err != nil {
				t.Errorf("deleting twice: %v", err)
			}
			if err := s.DeleteSessions(ctx, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Session(ctx, tok('2')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("expired session kept: %v", err)
			}
			if _, err := s.Session(ctx, tok('1')); err != nil {
				t.Errorf("live session deleted: %v", err)
			}

			forgot, err := s.Reset(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{tok('a'), tok('b'), tok('d'), tok('e')}; !slices.Equal(forgot, want) {
				t.Errorf("Reset forgot %v, want %v", forgot, want)
			}
			if _, err := s.Task(ctx, tok('b')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("task after reset: %v", err)
			}
			if _, err := s.Session(ctx, tok('1')); !errors.Is(err, engine.ErrTokenNotFound) {
				t.Errorf("session after reset: %v", err)
			}
		})
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := startedRecord(tok('b'), t0)
	if err := db.CreateTask(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSession(ctx, tok('1'), t0); err != nil {
		t.Fatal(err)
	}
	// A second process on the same directory is refused while the first
	// holds it.
	if _, err := sqlitestore.Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "another thumbd") {
		t.Errorf("second Open: %v, want a refusal", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Task(ctx, tok('b'))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, rec.Spec) {
		t.Errorf("spec after reopen = %+v", got.Spec)
	}
	if _, err := db.Session(ctx, tok('1')); err != nil {
		t.Errorf("session after reopen: %v", err)
	}
}
