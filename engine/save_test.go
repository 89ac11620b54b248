package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/storage"
)

// encodingStore is a MemoryStore that, as the database stores do, encodes
// the whole snapshot on every write, and counts the writes.
type encodingStore struct {
	*MemoryStore
	writes atomic.Int64
	bytes  atomic.Int64
}

func (s *encodingStore) UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error {
	return s.MemoryStore.UpdateTask(ctx, token, func(r *TaskRecord) error {
		if err := f(r); err != nil {
			return err
		}
		b, err := json.Marshal(r.Snap)
		if err != nil {
			return err
		}
		s.writes.Add(1)
		s.bytes.Add(int64(len(b)))
		return nil
	})
}

// saveFixture is an engine over an encodingStore and local storage, a
// started task, and one thumbnails output of n small files ready to save.
func saveFixture(tb testing.TB, n int) (*Engine, *encodingStore, string, []*outputPlan) {
	tb.Helper()
	dir := tb.TempDir()
	files, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		tb.Fatal(err)
	}
	img := filepath.Join(dir, "thumb.jpg")
	if err := os.WriteFile(img, []byte("\xff\xd8\xff\xe0 a small jpeg \xff\xd9"), 0o644); err != nil {
		tb.Fatal(err)
	}
	store := &encodingStore{MemoryStore: NewMemoryStore()}
	e := New(Config{Store: store, Files: files, WorkDir: dir, Workers: 1})
	token := "save" + fmt.Sprintf("%028d", n)
	if err := store.CreateTask(context.Background(), TaskRecord{Token: token, Created: time.Now(), Spec: &Spec{}, Snap: Snapshot{State: StateEncoding}}); err != nil {
		tb.Fatal(err)
	}
	p := &outputPlan{index: 0, out: Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond}, format: JPEG}
	for i := range n {
		p.files = append(p.files, producedFile{name: fmt.Sprintf("thumb_%05d.jpg", i+1), path: img, kind: KindImage, format: "jpg",
			width: 320, height: 180, frames: []Frame{{Requested: time.Duration(i) * 100 * time.Millisecond, Actual: time.Duration(i) * 100 * time.Millisecond}}})
	}
	return e, store, token, []*outputPlan{p}
}

// TestSaveWritesTheStatusRarely saves 2,000 images and checks that every
// one is in the status, in order, and that the status was written about
// once a flush period, not once or twice per image.
func TestSaveWritesTheStatusRarely(t *testing.T) {
	const n = 2000
	e, store, token, plans := saveFixture(t, n)
	began := time.Now()
	if err := e.save(context.Background(), token, plans); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	rec, err := store.Task(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Snap.Images) != n {
		t.Fatalf("%d images in the status, want %d", len(rec.Snap.Images), n)
	}
	for i, img := range rec.Snap.Images {
		if img.N != i || img.Location.Key == "" || img.Frames[0].Requested != time.Duration(i)*100*time.Millisecond {
			t.Fatalf("image %d: %+v", i, img)
		}
	}
	if rec.Snap.Percent < 98.9 {
		t.Errorf("percent %v after saving, want 99", rec.Snap.Percent)
	}
	max := 3 + int64(took/saveFlushEvery)
	t.Logf("%d images saved in %v with %d status writes (%.1f MiB encoded)", n, took, store.writes.Load(), float64(store.bytes.Load())/(1<<20))
	if w := store.writes.Load(); w > max {
		t.Errorf("%d status writes for %d images in %v, want at most %d", w, n, took, max)
	}
}

// BenchmarkSave measures saving a task's images, kept locally, with a store
// that encodes the status on every write as the databases do. The cost per
// image (ns/image) should not grow with the count.
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{100, 1000, 6000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			var total time.Duration
			var writes int64
			for range b.N {
				b.StopTimer()
				e, store, token, plans := saveFixture(b, n)
				b.StartTimer()
				began := time.Now()
				if err := e.save(context.Background(), token, plans); err != nil {
					b.Fatal(err)
				}
				total += time.Since(began)
				writes += store.writes.Load()
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*n), "ns/image")
			b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
		})
	}
}

// TestSaveStopsAtTheFirstFailure saves files of which one is missing: the
// error names it, and the status holds exactly the files before it.
func TestSaveStopsAtTheFirstFailure(t *testing.T) {
	e, store, token, plans := saveFixture(t, 50)
	plans[0].files[30].path = filepath.Join(t.TempDir(), "gone.jpg")
	err := e.save(context.Background(), token, plans)
	if err == nil || !strings.Contains(err.Error(), "keeping thumb_00031.jpg") {
		t.Fatalf("save = %v, want the failure of thumb_00031.jpg", err)
	}
	rec, err := store.Task(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Snap.Images) != 30 {
		t.Fatalf("%d images recorded, want the 30 before the failure", len(rec.Snap.Images))
	}
	for i, img := range rec.Snap.Images {
		if img.N != i {
			t.Fatalf("image %d has N %d", i, img.N)
		}
	}
}
