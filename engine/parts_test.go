package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/storage"
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

func (m *memSpreader) PartDone(_ context.Context, p Part) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done[p.Token] == nil {
		m.done[p.Token] = map[int]bool{}
	}
	m.done[p.Token][p.Index] = true
	return len(m.done[p.Token]), nil
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

// TestSpreadChunks spreads a task whose series are long enough to be cut
// into chunks (PartImages 4): a series kept by thumbd, a sprite series of
// 3×2 sheets sent to two destinations, and short outputs grouped as
// before. Its parts run in a shuffled order, some twice. The task ends
// with what a task run whole gets: the same entries in the same order,
// images of the same frames, the same WebVTT files, destinations and
// manifests (but for the timings and extraction strategies in them).
func TestSpreadChunks(t *testing.T) {
	sq := &memSpreader{MemoryQueue: NewMemoryQueue(16, 2), done: map[string]map[int]bool{}}
	spread := newHarnessWith(t, func(c *Config) { c.Queue, c.PartOutputs, c.PartImages = sq, 8, 4 })
	whole := newHarness(t)
	dests := []storage.Destination{{URL: "s3://h/b/sp/"}, {URL: "s3://h2/b2/sprites/x.png"}}
	outputs := []Output{
		{Kind: KindThumbnail, Time: ptr(0.5), Width: 160},
		{Kind: KindThumbnails, Interval: time.Second, Width: 96, Format: JPEG},
		{Kind: KindThumbnails, Interval: 500 * time.Millisecond, Width: 64, Sprite: true, Columns: 3, Rows: 2, Destinations: dests},
		{Kind: KindThumbnails, Interval: 5 * time.Second, Width: 64},
	}
	want := whole.run(t, "clip.mp4", outputs...)
	mustComplete(t, want)
	wholePuts := maps.Clone(whole.objects.puts)

	task := spread.start(t, "clip.mp4", outputs...)
	wantParts := []Part{
		{First: 0, Count: 1},
		{First: 1, Count: 1, From: 0, To: 4}, {First: 1, Count: 1, From: 4, To: 8}, {First: 1, Count: 1, From: 8, To: 10},
		// Sheets of 6 tiles: chunks of 6 images, not 4.
		{First: 2, Count: 1, From: 0, To: 6}, {First: 2, Count: 1, From: 6, To: 12}, {First: 2, Count: 1, From: 12, To: 18}, {First: 2, Count: 1, From: 18, To: 20},
		{First: 3, Count: 1},
	}
	for i := range wantParts {
		wantParts[i].Token, wantParts[i].Index, wantParts[i].Parts = task, i, len(wantParts)
	}
	var parts []Part
	for deadline := time.Now().Add(10 * time.Second); len(parts) < len(wantParts); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d parts queued, want %d", len(parts), len(wantParts))
		}
		sq.mu.Lock()
		parts = slices.Clone(sq.parts)
		sq.mu.Unlock()
	}
	if !slices.Equal(parts, wantParts) {
		t.Fatalf("parts\n%+v\nwant\n%+v", parts, wantParts)
	}
	order := []int{5, 1, 8, 0, 7, 2, 4, 6, 3}
	for k, i := range order {
		runs := 1 + i%2 // odd parts run twice, as a part whose instance died does
		if k == len(order)-1 {
			runs = 1
		}
		for range runs {
			if err := sq.work(t.Context(), parts[i]); err != nil {
				t.Fatalf("%s: %v", parts[i], err)
			}
		}
		if s, _ := spread.e.Status(t.Context(), task); s.State.Done() != (k == len(order)-1) {
			t.Fatalf("after %s the task is %s: %s", parts[i], s.State, s.Error)
		}
	}
	got := spread.wait(t, task)
	mustComplete(t, got)

	entry := func(s Snapshot, im Image) string {
		var at []string
		for _, f := range im.Frames {
			at = append(at, fmt.Sprint(f.Actual))
		}
		loc := path.Base(im.Location.Key) + im.Location.URL
		return fmt.Sprintf("%d/%d %s %s %dx%d %s frames %v manifest %s", im.Output, im.N, im.Kind, im.Format, im.Width, im.Height, loc, at, path.Base(im.Manifest))
	}
	if len(got.Images) != len(want.Images) {
		t.Fatalf("%d images, want %d", len(got.Images), len(want.Images))
	}
	for i := range want.Images {
		if g, w := entry(got, got.Images[i]), entry(want, want.Images[i]); g != w {
			t.Errorf("image %d:\n %s\nwant, as run whole:\n %s", i, g, w)
		}
	}
	// The kept files: the VTTs and manifests are the whole run's.
	for i, im := range want.Images {
		if im.Kind != KindVTT || im.Location.Type != "local" {
			continue
		}
		g, err1 := os.ReadFile(spread.path(got.Images[i]))
		w, err2 := os.ReadFile(whole.path(im))
		if err1 != nil || err2 != nil || string(g) != string(w) {
			t.Errorf("output %d's VTT:\n%s\nwant:\n%s (%v, %v)", im.Output, g, w, err1, err2)
		}
	}
	untimed := func(file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// How a frame was extracted depends on which frames one run
		// plans together (the whole task, or one part): the frame does not.
		b = regexp.MustCompile(`"took": [0-9.e-]+`).ReplaceAll(b, []byte(`"took": 0`))
		return regexp.MustCompile(`"strategy": "[a-z]+"`).ReplaceAllString(string(b), `"strategy": ""`)
	}
	for _, output := range []int{1, 2, 3} {
		i := slices.IndexFunc(want.Images, func(im Image) bool { return im.Output == output })
		g := untimed(filepath.Join(spread.files.dir, got.Images[i].Manifest))
		w := untimed(filepath.Join(whole.files.dir, want.Images[i].Manifest))
		if g != w {
			t.Errorf("output %d's manifest:\n%s\nwant:\n%s", output, g, w)
		}
	}
	// The destinations got the same objects (the VTT and sheets of the
	// sprite series, in both).
	if g := spread.objects.puts; !maps.Equal(g, wholePuts) {
		t.Errorf("objects put:\n%v\nwant:\n%v", slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(wholePuts)))
	}
	if ev := spread.events.of(task); !slices.Equal(ev, []EventKind{EventQueued, EventSaved}) {
		t.Errorf("events %v, want queued, saved", ev)
	}
}
