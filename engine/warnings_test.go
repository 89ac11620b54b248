package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestTaskWarnings checks that TaskWarnings and Engine.AddWarning add a
// warning to the task in the store, after those it has, and that an
// unknown task gives ErrTokenNotFound.
func TestTaskWarnings(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	tok := NewToken()
	first := Warning{Message: "first", Details: "d", Tag: "image-0-1"}
	if err := store.CreateTask(ctx, TaskRecord{Token: tok, Created: time.Now(), Snap: Snapshot{State: StateQueued, Warnings: []Warning{first}}}); err != nil {
		t.Fatal(err)
	}
	e := New(Config{Store: store, WorkDir: t.TempDir()})
	w1 := Warning{Message: "Callback delivery error", Details: "by TaskWarnings"}
	w2 := Warning{Message: "Callback delivery error", Details: "by the engine"}
	if err := (TaskWarnings{Store: store}).AddWarning(ctx, tok, w1); err != nil {
		t.Fatal(err)
	}
	if err := e.AddWarning(ctx, tok, w2); err != nil {
		t.Fatal(err)
	}
	rec, err := store.Task(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Warning{first, w1, w2}; !reflect.DeepEqual(rec.Snap.Warnings, want) {
		t.Errorf("warnings %+v, want %+v", rec.Snap.Warnings, want)
	}
	if err := (TaskWarnings{Store: store}).AddWarning(ctx, NewToken(), w1); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("unknown task: %v, want ErrTokenNotFound", err)
	}
}
