package engine

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSpreader is a MemoryQueue that spreads: the parts it is given are run
// by the test, through work.
type memSpreader struct {
	*MemoryQueue
	mu    sync.Mutex
	parts []Part
	done  map[string]map[int]bool
	work  func(ctx context.Context, p Part) error
}

func (m *memSpreader) EnqueueParts(_ context.Context, parts []Part) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts = append(m.parts, parts...)
	return nil
}

func (m *memSpreader) SetPartWork(work func(ctx context.Context, p Part) error) { m.work = work }

func (m *memSpreader) PartDone(_ context.Context, p Part) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done[p.Token] == nil {
		m.done[p.Token] = map[int]bool{}
	}
	m.done[p.Token][p.Index] = true
	return len(m.done[p.Token]) == p.Parts, nil
}

// TestSpreadParts spreads a task of four outputs into parts of one output
// and runs them last first, each but the last twice (a rerun): the task
// completes when the first part ends, with the entries a task run whole
// gets, in the same order, each once, and one saved event; a part run
// after the end changes nothing.
func TestSpreadParts(t *testing.T) {
	sq := &memSpreader{MemoryQueue: NewMemoryQueue(16, 2), done: map[string]map[int]bool{}}
	spread := newHarnessWith(t, func(c *Config) { c.Queue, c.PartOutputs = sq, 1 })
	whole := newHarness(t)
	outputs := []Output{
		{Kind: KindThumbnail, Time: ptr(0.25), Width: 160},
		{Kind: KindThumbnails, Interval: 2 * time.Second, Width: 96, Format: JPEG},
		{Kind: KindThumbnail, Time: ptr(0.75), Width: 120},
		{Kind: KindThumbnails, Interval: 3 * time.Second, Width: 64, Sprite: true},
	}
	want := whole.run(t, "clip.mp4", outputs...)
	mustComplete(t, want)

	task := spread.start(t, "clip.mp4", outputs...)
	var parts []Part
	for deadline := time.Now().Add(10 * time.Second); len(parts) < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d parts queued, want 4", len(parts))
		}
		sq.mu.Lock()
		parts = slices.Clone(sq.parts)
		sq.mu.Unlock()
	}
	if s, _ := spread.e.Status(t.Context(), task); s.State != StateEncoding {
		t.Errorf("a spread task is %s, want encoding", s.State)
	}
	for i := 3; i >= 0; i-- {
		runs := 2
		if i == 0 {
			runs = 1
		}
		for range runs {
			if err := sq.work(t.Context(), parts[i]); err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
		}
		if s, _ := spread.e.Status(t.Context(), task); s.State.Done() != (i == 0) {
			t.Errorf("after part %d the task is %s", i, s.State)
		}
	}
	if err := sq.work(t.Context(), parts[2]); err != nil { // after the end
		t.Fatal(err)
	}
	got := spread.wait(t, task)
	mustComplete(t, got)
	shape := func(s Snapshot, token string) []string {
		var out []string
		for _, im := range s.Images {
			out = append(out, fmt.Sprintf("%d/%d %s %dx%d %s frames %d", im.Output, im.N, im.Kind, im.Width, im.Height, path.Base(im.Location.Key), len(im.Frames)))
		}
		return out
	}
	if g, w := shape(got, task), shape(want, whole.last); !slices.Equal(g, w) {
		t.Errorf("spread task's images:\n%q\nwant, as run whole:\n%q", g, w)
	}
	if ev := spread.events.of(task); !slices.Equal(ev, []EventKind{EventQueued, EventSaved}) {
		t.Errorf("events %v, want queued, saved", ev)
	}
}

// downStore is a MemoryStore that cannot record a task's end while down.
type downStore struct {
	*MemoryStore
	down atomic.Bool
}

func (s *downStore) UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error {
	return s.MemoryStore.UpdateTask(ctx, token, func(r *TaskRecord) error {
		if err := f(r); err != nil {
			return err
		}
		if s.down.Load() && r.Snap.State == StateCompleted {
			return errors.New("database unavailable")
		}
		return nil
	})
}

// TestGivenUpTaskEndsInError runs a task and a spread task whose ends the
// store cannot record: the queue's last attempt fails, the queue gives up,
// and each task ends in error, once, saying what failed, with one saved
// event; nothing is left encoding.
func TestGivenUpTaskEndsInError(t *testing.T) {
	t.Run("whole", func(t *testing.T) {
		store := &downStore{MemoryStore: NewMemoryStore()}
		store.down.Store(true)
		h := newHarnessWith(t, func(c *Config) { c.Store = store })
		task := h.start(t, "clip.mp4", Output{Kind: KindThumbnail, Time: ptr(0.25), Width: 160})
		// The MemoryQueue makes one attempt: its failure is its last.
		s := h.wait(t, task)
		if s.State != StateError || !strings.Contains(s.Error, "database unavailable") || !strings.Contains(s.Error, "try it again") {
			t.Fatalf("task ended %s: %q, want error naming the store's failure", s.State, s.Error)
		}
		h.stop()
		if got := h.events.events[task]; !slices.Equal(got, []EventKind{EventQueued, EventError, EventSaved}) {
			t.Errorf("events %v, want queued, error, saved", got)
		}
	})
	t.Run("part", func(t *testing.T) {
		sq := &memSpreader{MemoryQueue: NewMemoryQueue(16, 2), done: map[string]map[int]bool{}}
		h := newHarnessWith(t, func(c *Config) { c.Queue, c.PartOutputs = sq, 1 })
		task := h.start(t, "clip.mp4",
			Output{Kind: KindThumbnail, Time: ptr(0.25), Width: 160},
			Output{Kind: KindThumbnail, Time: ptr(0.75), Width: 120})
		var parts []Part
		for deadline := time.Now().Add(10 * time.Second); len(parts) < 2; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d parts queued, want 2", len(parts))
			}
			sq.mu.Lock()
			parts = slices.Clone(sq.parts)
			sq.mu.Unlock()
		}
		if err := sq.work(t.Context(), parts[0]); err != nil {
			t.Fatal(err)
		}
		// Part 2's last attempt fails outside the task: the queue gives up.
		cause := errors.New("part 2 of 2 (outputs 1 to 1) failed 3 times: database unavailable")
		sq.MemoryQueue.giveUp(t.Context(), task, cause)
		sq.MemoryQueue.giveUp(t.Context(), task, cause) // once only
		s := h.wait(t, task)
		if s.State != StateError || !strings.Contains(s.Error, cause.Error()) {
			t.Fatalf("task ended %s: %q, want error naming the part that failed", s.State, s.Error)
		}
		// The part run again later finds the task ended.
		if err := sq.work(t.Context(), parts[1]); err != nil {
			t.Fatal(err)
		}
		h.stop()
		if got := h.events.events[task]; !slices.Equal(got, []EventKind{EventQueued, EventError, EventSaved}) {
			t.Errorf("events %v, want queued, error, saved", got)
		}
	})
}
