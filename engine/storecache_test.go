package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// sharedMemory is a MemoryStore that says it is shared, as pgstore does.
type sharedMemory struct{ *MemoryStore }

func (sharedMemory) Shared() bool { return true }

func TestCachedStore(t *testing.T) {
	ctx := context.Background()
	setState := func(st State) func(*TaskRecord) error {
		return func(r *TaskRecord) error { r.Snap.State = st; return nil }
	}
	state := func(t *testing.T, s Store, token string) State {
		t.Helper()
		r, err := s.Task(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		return r.Snap.State
	}
	tests := []struct {
		name string
		run  func(t *testing.T, under *MemoryStore, c *cachedStore)
	}{
		{"writes are seen at once", func(t *testing.T, under *MemoryStore, c *cachedStore) {
			if got := state(t, c, "a"); got != StateCreated {
				t.Fatalf("state %s", got)
			}
			if err := c.UpdateTask(ctx, "a", setState(StateEncoding)); err != nil {
				t.Fatal(err)
			}
			if got := state(t, c, "a"); got != StateEncoding {
				t.Errorf("after an update: %s, want encoding", got)
			}
		}},
		{"a failed update changes nothing", func(t *testing.T, under *MemoryStore, c *cachedStore) {
			boom := errors.New("boom")
			err := c.UpdateTask(ctx, "a", func(r *TaskRecord) error { r.Snap.State = StateError; return boom })
			if !errors.Is(err, boom) {
				t.Fatalf("err %v", err)
			}
			if got := state(t, c, "a"); got != StateCreated {
				t.Errorf("after a failed update: %s, want created", got)
			}
		}},
		{"callers cannot write into the cache", func(t *testing.T, under *MemoryStore, c *cachedStore) {
			if err := c.UpdateTask(ctx, "a", func(r *TaskRecord) error {
				r.Snap.Images = make([]Image, 1, 8)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			r, _ := c.Task(ctx, "a")
			r.Snap.Images = append(r.Snap.Images, Image{N: 7})
			r.Snap.Warnings = append(r.Snap.Warnings, Warning{})
			again, _ := c.Task(ctx, "a")
			if len(again.Snap.Images) != 1 || len(again.Snap.Warnings) != 0 {
				t.Errorf("a caller's append reached the cache: %+v", again.Snap)
			}
		}},
		{"deleted and reset tasks are gone", func(t *testing.T, under *MemoryStore, c *cachedStore) {
			if err := c.DeleteTask(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Task(ctx, "a"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("deleted task: %v", err)
			}
			if _, err := c.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Task(ctx, "b"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("after a reset: %v", err)
			}
			if _, err := c.Session(ctx, "s"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("session after a reset: %v", err)
			}
		}},
		{"bounded", func(t *testing.T, under *MemoryStore, c *cachedStore) {
			c.max = 1
			for _, tok := range []string{"a", "b"} {
				if err := c.UpdateTask(ctx, tok, setState(StateCompleted)); err != nil {
					t.Fatal(err)
				}
				state(t, c, tok)
			}
			if len(c.tasks) > 1 {
				t.Errorf("%d tasks cached, want 1 at most", len(c.tasks))
			}
			if got := state(t, c, "a"); got != StateCompleted {
				t.Errorf("evicted task read again: %s", got)
			}
		}},
	}
	for _, shared := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/shared %v", tt.name, shared), func(t *testing.T) {
				under := NewMemoryStore()
				var s Store = under
				if shared {
					s = sharedMemory{under}
				}
				c := newCachedStore(s, 100)
				for _, tok := range []string{"a", "b"} {
					if err := c.CreateTask(ctx, TaskRecord{Token: tok, Snap: Snapshot{State: StateCreated}}); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.PutSession(ctx, "s", Session{Expires: time.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				tt.run(t, under, c)
			})
		}
	}
}

// TestCachedStoreShared checks what a shared store's cache serves: a task
// still running as the database has it, an ended one from memory for a
// while.
func TestCachedStoreShared(t *testing.T) {
	ctx := context.Background()
	under := NewMemoryStore()
	c := newCachedStore(sharedMemory{under}, 100)
	c.ttl = 50 * time.Millisecond
	if err := under.CreateTask(ctx, TaskRecord{Token: "a", Snap: Snapshot{State: StateEncoding}}); err != nil {
		t.Fatal(err)
	}
	other := func(st State) { // another process's write
		if err := under.UpdateTask(ctx, "a", func(r *TaskRecord) error { r.Snap.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	get := func() State {
		r, err := c.Task(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		return r.Snap.State
	}
	get()
	other(StateSaving)
	if got := get(); got != StateSaving {
		t.Fatalf("running task: %s, want saving (not cached)", got)
	}
	other(StateCompleted)
	if got := get(); got != StateCompleted {
		t.Fatalf("got %s, want completed", got)
	}
	other(StateError) // as a late warning would change an ended task
	if got := get(); got != StateCompleted {
		t.Errorf("ended task within its time in the cache: %s, want completed (cached)", got)
	}
	time.Sleep(60 * time.Millisecond)
	if got := get(); got != StateError {
		t.Errorf("ended task past its time in the cache: %s, want error (read again)", got)
	}
}
