package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "golang.org/x/image/webp"

	"github.com/thumbd/thumbd/internal/cliptest"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/vtt"
)

// Integration tests: real ffmpeg and ffprobe on small clips made with
// ffmpeg itself. testdata/clip.mp4 (repo root) is 10 s, 640x360, 25 fps
// H.264 with B-frames, GOP 50, AAC; its top 40 rows encode the frame number
// in 8 blocks of 80 px, bit b white in block b. The clips are made by
// package cliptest.

func TestMain(m *testing.M) {
	code := m.Run()
	cliptest.Cleanup()
	os.Exit(code)
}

// ---- the engine, end to end ----

// fakeFiles is a FileStore writing under a directory.
type fakeFiles struct {
	dir string
	mu  sync.Mutex
	ct  map[string]string
}

func (f *fakeFiles) Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error) {
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return storage.Location{}, fmt.Errorf("bad name %q", name)
	}
	p := filepath.Join(f.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return storage.Location{}, err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return storage.Location{}, err
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return storage.Location{}, err
	}
	f.mu.Lock()
	f.ct[name] = contentType
	f.mu.Unlock()
	return storage.Location{Type: "local", Key: name}, nil
}

// fakeObjects is an ObjectStore that keeps what it is given in memory.
type fakeObjects struct {
	mu   sync.Mutex
	puts map[string]int64 // URL → size
}

func (f *fakeObjects) Put(ctx context.Context, dst storage.Destination, body io.ReadSeeker, size int64, contentType string) (storage.Location, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return storage.Location{}, err
	}
	if int64(len(b)) != size || size == 0 {
		return storage.Location{}, fmt.Errorf("size %d, read %d", size, len(b))
	}
	f.mu.Lock()
	f.puts[dst.URL] = size
	f.mu.Unlock()
	return storage.Location{URL: dst.URL, Type: "custom_s3"}, nil
}

// fakeNotifier records the events of each task.
type fakeNotifier struct {
	mu     sync.Mutex
	events map[string][]EventKind
	saved  map[string]chan struct{} // closed when a task's EventSaved arrives
}

func (f *fakeNotifier) Notify(ctx context.Context, ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[ev.Token] = append(f.events[ev.Token], ev.Kind)
	if ch := f.savedChan(ev.Token); ev.Kind == EventSaved {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

// savedChan is closed when token's EventSaved arrives; f.mu is held.
func (f *fakeNotifier) savedChan(token string) chan struct{} {
	if f.saved == nil {
		f.saved = map[string]chan struct{}{}
	}
	ch, ok := f.saved[token]
	if !ok {
		ch = make(chan struct{})
		f.saved[token] = ch
	}
	return ch
}

// ended waits for a task's EventSaved, the last event a task gets (sent
// after its end is in the store), and returns the task's events.
func (f *fakeNotifier) ended(t *testing.T, token string) []EventKind {
	t.Helper()
	f.mu.Lock()
	ch := f.savedChan(token)
	f.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Errorf("no saved event 10 s after the task ended")
	}
	return f.of(token)
}

func (f *fakeNotifier) of(token string) []EventKind {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]EventKind(nil), f.events[token]...)
}

type harness struct {
	e       *Engine
	files   *fakeFiles
	objects *fakeObjects
	events  *fakeNotifier
	workDir string
	base    string // URL of the clips directory
	stop    func() // ends Run and waits for it
	last    string // token of the last task run
}

// newHarness starts an engine whose sources are served over HTTP from the
// clips directory (the engine accepts only http, https and s3 sources).
func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the engine's configuration changed by
// mutate.
func newHarnessWith(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	dir := cliptest.Dir(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	h := &harness{
		files:   &fakeFiles{dir: t.TempDir(), ct: map[string]string{}},
		objects: &fakeObjects{puts: map[string]int64{}},
		events:  &fakeNotifier{events: map[string][]EventKind{}},
		workDir: t.TempDir(),
		base:    srv.URL,
	}
	cfg := Config{Workers: 2, WorkDir: h.workDir, Files: h.files, Objects: h.objects, Notifier: h.events}
	if mutate != nil {
		mutate(&cfg)
	}
	h.e = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := h.e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		close(done)
	}()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		h.stop()
		srv.Close()
	})
	return h
}

// start starts a task and returns its token.
func (h *harness) start(t *testing.T, clip string, outputs ...Output) string {
	t.Helper()
	tok, _, err := h.e.NewSession(t.Context(), "test-api-key-0001")
	if err != nil {
		t.Fatal(err)
	}
	task, err := h.e.CreateTask(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.e.Start(t.Context(), task, Spec{Source: h.base + "/" + clip, Outputs: outputs}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return task
}

// run starts a task for outputs on the clip and waits for it to end.
func (h *harness) run(t *testing.T, clip string, outputs ...Output) Snapshot {
	t.Helper()
	return h.wait(t, h.start(t, clip, outputs...))
}

// wait polls a task until it ends.
func (h *harness) wait(t *testing.T, task string) Snapshot {
	t.Helper()
	h.last = task
	deadline := time.Now().Add(45 * time.Second)
	var last Snapshot
	for {
		s, err := h.e.Status(t.Context(), task)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if s.Percent < last.Percent {
			t.Errorf("percent went down: %v → %v", last.Percent, s.Percent)
		}
		last = s
		if s.State.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not done after 45 s: %+v", s)
		}
		time.Sleep(15 * time.Millisecond)
	}
	if last.State == StateCompleted {
		if last.Percent != 100 {
			t.Errorf("completed at %v%%", last.Percent)
		}
		for _, img := range last.Images {
			if img.Location.Type != "local" {
				continue
			}
			fi, err := os.Stat(h.path(img))
			if err != nil || fi.Size() == 0 {
				t.Errorf("image %+v: stored file missing or empty (%v)", img, err)
			}
		}
	}
	return last
}

func (h *harness) path(img Image) string {
	return filepath.Join(h.files.dir, filepath.FromSlash(img.Location.Key))
}

func mustComplete(t *testing.T, s Snapshot) {
	t.Helper()
	if s.State != StateCompleted {
		t.Fatalf("task ended %q: %s", s.State, s.Error)
	}
}

// imagesOf returns the output's images of a kind, in order.
func imagesOf(s Snapshot, output int, kind ImageKind) []Image {
	var out []Image
	for _, img := range s.Images {
		if img.Output == output && img.Kind == kind {
			out = append(out, img)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out
}

func decode(t *testing.T, path string) (image.Image, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding %s: %v", filepath.Base(path), err)
	}
	return img, format
}

func luma(img image.Image, x, y int) uint8 {
	return color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
}

// bandFrame reads the frame number clip.mp4 draws in its top band, from a
// picture of it whose band starts at (x0, y0) with blocks blockW wide and
// bandH tall.
func bandFrame(img image.Image, x0, y0, blockW, bandH int) (int, error) {
	n := 0
	var ls []uint8
	for b := range 8 {
		l := luma(img, x0+blockW*b+blockW/2, y0+bandH/2)
		ls = append(ls, l)
		switch {
		case l > 170:
			n |= 1 << b
		case l < 85:
		default:
			return -1, fmt.Errorf("block %d is neither black nor white (lumas %v)", b, ls)
		}
	}
	return n, nil
}

// imageFrame decodes a full-frame image of clip.mp4 (any size with its
// aspect ratio) and returns its frame number.
func imageFrame(t *testing.T, path string) int {
	t.Helper()
	img, _ := decode(t, path)
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	n, err := bandFrame(img, 0, 0, w/8, h*40/360)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return n
}

// (a) rotation.
func TestEngineRotation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		clip   string
		w, h   int
		corner string // where the source's top-left box ends up
	}{
		{"box.mp4", 320, 180, "tl"},
		{"rot90.mp4", 180, 320, "bl"}, // display matrix 90° counter-clockwise
		{"rot180.mp4", 320, 180, "br"},
		{"rot270.mp4", 180, 320, "tr"},
	}
	for _, tt := range tests {
		t.Run(tt.clip, func(t *testing.T) {
			s := h.run(t, tt.clip, Output{Kind: KindThumbnail}, Output{Kind: KindThumbnail, Width: 90, Format: JPEG})
			mustComplete(t, s)
			def := imagesOf(s, 0, KindImage)
			small := imagesOf(s, 1, KindImage)
			if len(def) != 1 || len(small) != 1 {
				t.Fatalf("images: %+v", s.Images)
			}
			img, _ := decode(t, h.path(def[0]))
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h || def[0].Width != tt.w || def[0].Height != tt.h {
				t.Errorf("default size: file %v, reported %dx%d, want %dx%d", b.Size(), def[0].Width, def[0].Height, tt.w, tt.h)
			}
			corners := map[string]image.Point{"tl": {10, 10}, "tr": {tt.w - 11, 10}, "bl": {10, tt.h - 11}, "br": {tt.w - 11, tt.h - 11}}
			for name, p := range corners {
				white := luma(img, p.X, p.Y) > 128
				if white != (name == tt.corner) {
					t.Errorf("corner %s white=%v; the box should be at %s", name, white, tt.corner)
				}
			}
			si, _ := decode(t, h.path(small[0]))
			wantH := int(math.Round(90 * float64(tt.h) / float64(tt.w)))
			if b := si.Bounds(); b.Dx() != 90 || b.Dy() != wantH {
				t.Errorf("width 90: file %v, want 90x%d", b.Size(), wantH)
			}
		})
	}
}

// (b) non-square pixels.
func TestEngineNonSquarePixels(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "sar.mp4", Output{Kind: KindThumbnail}, Output{Kind: KindThumbnail, Resolution: 120})
	mustComplete(t, s)
	for i, want := range []image.Point{{640, 240}, {320, 120}} {
		imgs := imagesOf(s, i, KindImage)
		if len(imgs) != 1 {
			t.Fatalf("output %d: %+v", i, imgs)
		}
		img, _ := decode(t, h.path(imgs[0]))
		if img.Bounds().Size() != want || imgs[0].Width != want.X || imgs[0].Height != want.Y {
			t.Errorf("output %d: file %v, reported %dx%d, want %v", i, img.Bounds().Size(), imgs[0].Width, imgs[0].Height, want)
		}
	}
}

// (c) and (h), single thumbnails: every position lands on the first frame at
// or after it; positions at or past the end give the last frame.
func TestEngineThumbnailPositions(t *testing.T) {
	h := newHarness(t)
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	d := func(v time.Duration) *time.Duration { return &v }
	const last = 249
	tests := []struct {
		name      string
		o         Output
		requested time.Duration
		frame     int
	}{
		{"nothing: first frame", Output{}, 0, 0},
		{"start_time 0.01", Output{StartTime: d(10 * time.Millisecond)}, 10 * time.Millisecond, 1},
		{"start_time 1.23", Output{StartTime: d(1230 * time.Millisecond)}, 1230 * time.Millisecond, 31},
		{"start_time 2.08 on a B-frame", Output{StartTime: d(2080 * time.Millisecond)}, 2080 * time.Millisecond, 52},
		{"frame_number 7", Output{FrameNumber: n(7)}, 280 * time.Millisecond, 7},
		{"frame_number 50 (keyframe)", Output{FrameNumber: n(50)}, 2 * time.Second, 50},
		{"frame_number last", Output{FrameNumber: n(last)}, last * 40 * time.Millisecond, last},
		{"time 0.5", Output{Time: f(0.5)}, 5 * time.Second, 125},
		{"time 1.0", Output{Time: f(1)}, 10 * time.Second, last},
		{"start_time 9.99, after the last frame", Output{StartTime: d(9990 * time.Millisecond)}, 9990 * time.Millisecond, last},
		{"start_time past the end", Output{StartTime: d(time.Minute)}, time.Minute, last},
		{"frame_number past the end", Output{FrameNumber: n(400)}, 16 * time.Second, last},
	}
	var outs []Output
	for _, tt := range tests {
		o := tt.o
		o.Kind = KindThumbnail
		outs = append(outs, o)
	}
	s := h.run(t, "clip.mp4", outs...)
	mustComplete(t, s)
	if s.Duration != 10*time.Second {
		t.Errorf("Snapshot.Duration %v", s.Duration)
	}
	if ev := h.events.ended(t, h.last); !slices.Equal(ev, []EventKind{EventQueued, EventSaved}) {
		t.Errorf("events %v, want queued, saved", ev)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs := imagesOf(s, i, KindImage)
			if len(imgs) != 1 || len(imgs[0].Frames) != 1 {
				t.Fatalf("images: %+v", imgs)
			}
			img := imgs[0]
			if want := fmt.Sprintf("%s/thumbnail-%d.png", h.last, i); img.Location.Key != want || img.Location.Type != "local" {
				t.Errorf("stored as %+v, want key %s", img.Location, want)
			}
			if img.Width != 640 || img.Height != 360 || img.Format != "png" {
				t.Errorf("image %dx%d %s", img.Width, img.Height, img.Format)
			}
			if got := imageFrame(t, h.path(img)); got != tt.frame {
				t.Errorf("picture shows frame %d, want %d", got, tt.frame)
			}
			fr := img.Frames[0]
			if fr.Requested != tt.requested {
				t.Errorf("Requested %v, want %v", fr.Requested, tt.requested)
			}
			if want := time.Duration(tt.frame) * 40 * time.Millisecond; absDur(fr.Actual-want) > time.Millisecond {
				t.Errorf("Actual %v, want %v", fr.Actual, want)
			}
			if fr.Keyframe != (tt.frame%50 == 0) {
				t.Errorf("Keyframe %v for frame %d (GOP 50)", fr.Keyframe, tt.frame)
			}
		})
	}
}

// (h) a series at an interval that is not a multiple of the GOP.
func TestEngineFrameAccuracy(t *testing.T) {
	h := newHarness(t)
	const interval = 520 * time.Millisecond
	s := h.run(t, "clip.mp4", Output{Kind: KindThumbnails, Interval: interval})
	mustComplete(t, s)
	imgs := imagesOf(s, 0, KindImage)
	if len(imgs) != 20 { // 0, 0.52 … 9.88
		t.Fatalf("%d images, want 20", len(imgs))
	}
	for i, img := range imgs {
		req := time.Duration(i) * interval
		want := int((req + 40*time.Millisecond - 1) / (40 * time.Millisecond)) // first frame at or after
		got := imageFrame(t, h.path(img))
		if got != want {
			t.Errorf("image %d (at %v): frame %d, want %d", i, req, got, want)
		}
		if len(img.Frames) != 1 {
			t.Fatalf("image %d: frames %+v", i, img.Frames)
		}
		if img.Frames[0].Requested != req || absDur(img.Frames[0].Actual-time.Duration(got)*40*time.Millisecond) > time.Millisecond {
			t.Errorf("image %d: Frames[0] %+v, picture is frame %d", i, img.Frames[0], got)
		}
		if img.Width != 640 || img.Height != 360 {
			t.Errorf("image %d: %dx%d", i, img.Width, img.Height)
		}
	}
	cues := readVTT(t, h, s, 0)
	if len(cues) != 20 || cues[19].End != 10*time.Second || cues[1].Start != interval {
		t.Errorf("VTT cues: %+v", cues)
	}
}

func readVTT(t *testing.T, h *harness, s Snapshot, output int) []vtt.Cue {
	t.Helper()
	v := imagesOf(s, output, KindVTT)
	if len(v) != 1 {
		t.Fatalf("output %d: %d VTT files", output, len(v))
	}
	b, err := os.ReadFile(h.path(v[0]))
	if err != nil {
		t.Fatal(err)
	}
	cues, err := vtt.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("vtt.Parse: %v\n%s", err, b)
	}
	if ct := h.files.ct[v[0].Location.Key]; ct != "text/vtt" {
		t.Errorf("VTT content type %q", ct)
	}
	return cues
}

// (d) a container longer than its video.
func TestEngineAudioOutlastsVideo(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "av.mp4", Output{Kind: KindThumbnails, Interval: time.Second}, Output{Kind: KindThumbnail, Time: ptr(1.0)})
	mustComplete(t, s)
	if absDur(s.Duration-2*time.Second) > 40*time.Millisecond {
		t.Errorf("Duration %v, want ≈2s", s.Duration)
	}
	if imgs := imagesOf(s, 0, KindImage); len(imgs) != 2 {
		t.Errorf("%d images, want 2", len(imgs))
	}
	cues := readVTT(t, h, s, 0)
	if len(cues) != 2 || absDur(cues[1].End-2*time.Second) > 40*time.Millisecond {
		t.Errorf("cues %+v, want 2 ending at ≈2s", cues)
	}
	end := imagesOf(s, 1, KindImage)
	if len(end) != 1 || absDur(end[0].Frames[0].Actual-1960*time.Millisecond) > time.Millisecond {
		t.Errorf("time 1.0: %+v, want the frame at 1.96s", end)
	}
}

// (e) MPEG-TS starting at 1.4 s: times are relative to the video's start.
func TestEngineMPEGTSStartTime(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "clip.ts",
		Output{Kind: KindThumbnail, StartTime: ptr(2 * time.Second)},
		Output{Kind: KindThumbnail},
		Output{Kind: KindThumbnails, Interval: 2500 * time.Millisecond},
		Output{Kind: KindThumbnail, Time: ptr(1.0)},
		Output{Kind: KindThumbnail, StartTime: ptr(9 * time.Second)}) // inside the last GOP
	mustComplete(t, s)
	if absDur(s.Duration-10*time.Second) > time.Millisecond {
		t.Errorf("Duration %v", s.Duration)
	}
	check := func(what string, img Image, frame int) {
		t.Helper()
		if got := imageFrame(t, h.path(img)); got != frame {
			t.Errorf("%s: frame %d, want %d", what, got, frame)
		}
		if want := time.Duration(frame) * 40 * time.Millisecond; absDur(img.Frames[0].Actual-want) > time.Millisecond {
			t.Errorf("%s: Actual %v, want %v (relative to the video start)", what, img.Frames[0].Actual, want)
		}
	}
	check("start_time 2s", imagesOf(s, 0, KindImage)[0], 50)
	check("start", imagesOf(s, 1, KindImage)[0], 0)
	series := imagesOf(s, 2, KindImage)
	if len(series) != 4 {
		t.Fatalf("%d images at 2.5s, want 4", len(series))
	}
	for i, want := range []int{0, 63, 125, 188} {
		check(fmt.Sprintf("series %d", i), series[i], want)
	}
	check("time 1.0", imagesOf(s, 3, KindImage)[0], 249)
	check("start_time 9s", imagesOf(s, 4, KindImage)[0], 225)
}

// A damaged tail: the last packets may not all decode.
func TestEngineTruncatedTS(t *testing.T) {
	h := newHarness(t)
	// The last frame ffmpeg can decode, found independently of the engine.
	out, err := exec.Command("ffprobe", "-v", "quiet", "-select_streams", "v", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
		filepath.Join(cliptest.Dir(t), "truncated.ts")).Output()
	if err != nil {
		t.Fatal(err)
	}
	lastPTS := 0.0
	for _, l := range strings.Fields(string(out)) {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64); err == nil && v > lastPTS {
			lastPTS = v
		}
	}
	want := int(math.Round((lastPTS - 1.48) / 0.04))
	s := h.run(t, "truncated.ts", Output{Kind: KindThumbnail, Time: ptr(1.0)}, Output{Kind: KindThumbnail, StartTime: ptr(time.Hour)})
	mustComplete(t, s)
	for i := range 2 {
		img := imagesOf(s, i, KindImage)[0]
		if got := imageFrame(t, h.path(img)); got != want {
			t.Errorf("output %d: frame %d, want the last decodable frame %d", i, got, want)
		}
	}
}

// (f) a clip shorter than the requested time.
func TestEngineShortClip(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "short.mp4", Output{Kind: KindThumbnail, StartTime: ptr(500 * time.Millisecond)},
		Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond})
	mustComplete(t, s)
	one := imagesOf(s, 0, KindImage)
	if len(one) != 1 || one[0].Frames[0].Requested != 500*time.Millisecond || absDur(one[0].Frames[0].Actual-280*time.Millisecond) > time.Millisecond {
		t.Errorf("thumbnail at 0.5s: %+v, want the last frame (0.28s)", one)
	}
	series := imagesOf(s, 1, KindImage)
	if len(series) != 4 { // 0, 0.1, 0.2, 0.3 < 0.32
		t.Fatalf("%d images, want 4", len(series))
	}
	assertDistinct(t, h, series)
}

func assertDistinct(t *testing.T, h *harness, imgs []Image) {
	t.Helper()
	seen := map[string]int{}
	for i, img := range imgs {
		b, err := os.ReadFile(h.path(img))
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[string(b)]; dup {
			t.Errorf("images %d and %d are identical", j, i)
		}
		seen[string(b)] = i
	}
}

// (g) one keyframe for the whole clip: every seek decodes from the start.
func TestEngineSingleKeyframe(t *testing.T) {
	h := newHarness(t)
	for _, clip := range []string{"onekey.mp4", "onekey.ts"} {
		t.Run(clip, func(t *testing.T) {
			s := h.run(t, clip, Output{Kind: KindThumbnails, Interval: time.Second})
			mustComplete(t, s)
			imgs := imagesOf(s, 0, KindImage)
			if len(imgs) != 4 {
				t.Fatalf("%d images, want 4", len(imgs))
			}
			for i, img := range imgs {
				if got := imageFrame(t, h.path(img)); got != 25*i {
					t.Errorf("image %d: frame %d, want %d", i, got, 25*i)
				}
				if img.Frames[0].Keyframe != (i == 0) {
					t.Errorf("image %d: Keyframe %v", i, img.Frames[0].Keyframe)
				}
			}
			assertDistinct(t, h, imgs)
		})
	}
}

// (i) sprites.
func TestEngineSprite(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name         string
		o            Output
		tileW, tileH int
		cols, rows   int   // of a full sheet
		sheetRows    []int // rows used per sheet
		ext          string
	}{
		{"4 columns", Output{Columns: 4}, 160, 90, 4, 10, []int{3}, "png"},
		{"4 columns, 2 rows", Output{Columns: 4, Rows: 2}, 160, 90, 4, 2, []int{2, 1}, "png"}, // 8 + 2 tiles
		{"more columns than tiles", Output{Columns: 20}, 160, 90, 10, 10, []int{1}, "png"},
		{"jpg tiles 120 wide", Output{Columns: 3, Width: 120, Format: JPEG}, 120, 68, 3, 10, []int{4}, "jpg"},
		{"webp tiles of odd size", Output{Columns: 3, Width: 121, Height: 67, Format: WebP}, 121, 67, 3, 10, []int{4}, "webp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Kind, o.Interval, o.Sprite = KindThumbnails, time.Second, true
			s := h.run(t, "clip.mp4", o)
			mustComplete(t, s)
			sheets := imagesOf(s, 0, KindSprite)
			if len(sheets) != len(tt.sheetRows) {
				t.Fatalf("%d sheets, want %d", len(sheets), len(tt.sheetRows))
			}
			if n := len(imagesOf(s, 0, KindImage)); n != 0 {
				t.Errorf("%d loose images besides the sheets", n)
			}
			perSheet := tt.cols * tt.rows
			for k, sh := range sheets {
				wantW, wantH := tt.cols*tt.tileW, tt.sheetRows[k]*tt.tileH
				img, format := decode(t, h.path(sh))
				if img.Bounds().Dx() != wantW || img.Bounds().Dy() != wantH || sh.Width != wantW || sh.Height != wantH {
					t.Errorf("sheet %d: file %v, reported %dx%d, want %dx%d", k, img.Bounds().Size(), sh.Width, sh.Height, wantW, wantH)
				}
				if want := map[string]string{"png": "png", "jpg": "jpeg", "webp": "webp"}[tt.ext]; format != want || sh.Format != tt.ext {
					t.Errorf("sheet %d: decoded as %s, reported %s", k, format, sh.Format)
				}
				if !strings.HasSuffix(sh.Location.Key, fmt.Sprintf("/sprite_%04d.%s", k+1, tt.ext)) {
					t.Errorf("sheet %d stored as %q", k, sh.Location.Key)
				}
				wantTiles := min(perSheet, 10-k*perSheet)
				if len(sh.Frames) != wantTiles {
					t.Errorf("sheet %d: %d frames, want %d", k, len(sh.Frames), wantTiles)
				}
				if tt.ext != "png" {
					continue
				}
				// Each tile shows the frame it claims: tile i is frame 25·i.
				for j := range wantTiles {
					i := k*perSheet + j
					x, y := (j%tt.cols)*tt.tileW, (j/tt.cols)*tt.tileH
					got, err := bandFrame(img, x, y, tt.tileW/8, tt.tileH*40/360)
					if err != nil || got != 25*i {
						t.Errorf("sheet %d tile %d at (%d,%d): frame %d (%v), want %d", k, j, x, y, got, err, 25*i)
					}
					if j < len(sh.Frames) && sh.Frames[j].Requested != time.Duration(i)*time.Second {
						t.Errorf("sheet %d tile %d: Requested %v", k, j, sh.Frames[j].Requested)
					}
				}
			}
			cues := readVTT(t, h, s, 0)
			if len(cues) != 10 {
				t.Fatalf("%d cues, want 10", len(cues))
			}
			for i, c := range cues {
				k, j := i/perSheet, i%perSheet
				want := fmt.Sprintf("sprite_%04d.%s#xywh=%d,%d,%d,%d", k+1, tt.ext, (j%tt.cols)*tt.tileW, (j/tt.cols)*tt.tileH, tt.tileW, tt.tileH)
				if c.Text != want {
					t.Errorf("cue %d text %q, want %q", i, c.Text, want)
				}
				if c.Start != time.Duration(i)*time.Second || c.End != time.Duration(i+1)*time.Second {
					t.Errorf("cue %d: %v → %v", i, c.Start, c.End)
				}
			}
		})
	}
}

// (j) every format decodes at the size asked for.
func TestEngineImageFormats(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		o      Output
		w, h   int
		format string // as image.Decode names it
	}{
		{"jpg width", Output{Format: JPEG, Width: 320}, 320, 180, "jpeg"},
		{"jpg worst quality", Output{Format: JPEG, Width: 320, Quality: 1}, 320, 180, "jpeg"},
		{"jpg crop square", Output{Format: JPEG, Width: 300, Height: 300, ResizeMode: ResizeCrop}, 300, 300, "jpeg"},
		{"webp resolution (odd width)", Output{Format: WebP, Resolution: 120}, 213, 120, "webp"},
		{"webp pad square", Output{Format: WebP, Width: 320, Height: 320, Quality: 50}, 320, 320, "webp"},
		{"png pad, odd size", Output{Format: PNG, Width: 301, Height: 201}, 301, 201, "png"},
		{"png crop, odd size", Output{Format: PNG, Width: 301, Height: 201, ResizeMode: ResizeCrop}, 301, 201, "png"},
		{"jpg pad, odd size", Output{Format: JPEG, Width: 301, Height: 201}, 301, 201, "jpeg"},
		{"webp crop, odd size", Output{Format: WebP, Width: 301, Height: 201, ResizeMode: ResizeCrop}, 301, 201, "webp"},
		{"jpg crop, odd size", Output{Format: JPEG, Width: 321, Height: 321, ResizeMode: ResizeCrop}, 321, 321, "jpeg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Kind = KindThumbnail
			o.StartTime = ptr(time.Second)
			s := h.run(t, "clip.mp4", o)
			mustComplete(t, s)
			imgs := imagesOf(s, 0, KindImage)
			if len(imgs) != 1 {
				t.Fatalf("images %+v", s.Images)
			}
			img, format := decode(t, h.path(imgs[0]))
			if format != tt.format {
				t.Errorf("decoded as %s, want %s", format, tt.format)
			}
			if got := img.Bounds().Size(); got.X != tt.w || got.Y != tt.h {
				t.Errorf("file is %v, want %dx%d", got, tt.w, tt.h)
			}
			if imgs[0].Width != tt.w || imgs[0].Height != tt.h {
				t.Errorf("reported %dx%d, want %dx%d", imgs[0].Width, imgs[0].Height, tt.w, tt.h)
			}
			if want := ImageFormat(imgs[0].Format).ContentType(); h.files.ct[imgs[0].Location.Key] != want {
				t.Errorf("content type %q, want %q", h.files.ct[imgs[0].Location.Key], want)
			}
			if o.Width > 0 && o.Width == o.Height && o.ResizeMode != ResizeCrop { // padded above and below
				if l := luma(img, tt.w/2, 5); l > 40 {
					t.Errorf("padding is not black (luma %d)", l)
				}
			}
		})
	}
}

// (k) sources without pictures fail the task with a readable message.
func TestEngineBadSources(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		clip string
		want string
	}{
		{"audio.m4a", "no video stream"},
		{"notes.txt", "could not be read as media"},
		{"empty.mp4", "could not be read as media"},
		{"missing.mp4", "could not be read as media"},
	}
	for _, tt := range tests {
		t.Run(tt.clip, func(t *testing.T) {
			s := h.run(t, tt.clip, Output{Kind: KindThumbnail}, Output{Kind: KindThumbnails, Interval: time.Second})
			if s.State != StateError {
				t.Fatalf("state %q, want error", s.State)
			}
			if !strings.Contains(s.Error, tt.want) {
				t.Errorf("Error %q, want it to say %q", s.Error, tt.want)
			}
			if len(s.Error) > 400 || strings.Contains(s.Error, "showinfo") || strings.Contains(s.Error, "&{") || strings.Contains(s.Error, "%!") {
				t.Errorf("Error is not a readable message: %q", s.Error)
			}
			if len(s.Images) != 0 {
				t.Errorf("images stored for a failed task: %+v", s.Images)
			}
			if ev := h.events.ended(t, h.last); !slices.Equal(ev, []EventKind{EventQueued, EventError, EventSaved}) {
				t.Errorf("events %v, want queued, error, saved", ev)
			}
		})
	}
}

// HDR (PQ) sources are tone-mapped; the filters must exist and run.
func TestEngineHDR(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "hdr.mp4", Output{Kind: KindThumbnail, Format: JPEG}, Output{Kind: KindThumbnail, Width: 80})
	mustComplete(t, s)
	img, _ := decode(t, h.path(imagesOf(s, 1, KindImage)[0]))
	if img.Bounds().Dx() != 80 || img.Bounds().Dy() != 60 {
		t.Errorf("size %v", img.Bounds().Size())
	}
}

// Files for a destination go to the object store, under objectURL's names.
func TestEngineDestinations(t *testing.T) {
	h := newHarness(t)
	s := h.run(t, "short.mp4",
		Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond, Destinations: []storage.Destination{{URL: "s3://h/b/out/x.png"}, {URL: "s3://h2/b2/dir"}}},
		Output{Kind: KindThumbnail, Format: JPEG, Destinations: []storage.Destination{{URL: "s3://h/b/one.jpg"}}},
		Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond, Sprite: true, Destinations: []storage.Destination{{URL: "s3://h/b/sp/"}}})
	mustComplete(t, s)
	want := []string{"s3://h/b/one.jpg", "s3://h/b/sp/sprite_0001.png", "s3://h/b/sp/thumbnails.vtt",
		"s3://h/b/out/thumbnails.vtt", "s3://h2/b2/dir/thumbnails.vtt"}
	for i := 1; i <= 4; i++ {
		want = append(want, fmt.Sprintf("s3://h/b/out/thumb_%04d.png", i), fmt.Sprintf("s3://h2/b2/dir/thumb_%04d.png", i))
	}
	images := len(want)
	// A destination gets what Qencode would put there: no manifest.
	var got []string
	for u := range h.objects.puts {
		got = append(got, u)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("uploaded\n%q\nwant\n%q", got, want)
	}
	if len(s.Images) != images {
		t.Errorf("%d images, want %d", len(s.Images), images)
	}
	for _, img := range s.Images {
		if img.Location.Type != "custom_s3" || h.objects.puts[img.Location.URL] == 0 {
			t.Errorf("image %+v not uploaded", img)
		}
	}
	// thumbd keeps every output's manifest, and each image entry names it.
	kept := map[int]string{0: h.last + "/thumbnails-0/manifest.json", 1: h.last + "/thumbnail-1.manifest.json", 2: h.last + "/thumbnails-2/manifest.json"}
	var keptNames []string
	for name, ct := range h.files.ct {
		keptNames = append(keptNames, name)
		if ct != "application/json" {
			t.Errorf("%s kept as %s", name, ct)
		}
	}
	slices.Sort(keptNames)
	if want := []string{kept[1], kept[0], kept[2]}; !slices.Equal(keptNames, want) {
		t.Errorf("kept %q, want only the manifests %q", keptNames, want)
	}
	for _, img := range s.Images {
		if img.Manifest != kept[img.Output] {
			t.Errorf("image %d-%d names manifest %q, want %q", img.Output, img.N, img.Manifest, kept[img.Output])
		}
	}
}

// A manifest goes to the destinations when its output asks, or when
// Config.UploadManifests says so for all.
func TestEngineUploadManifests(t *testing.T) {
	outputs := []Output{
		{Kind: KindThumbnails, Interval: 100 * time.Millisecond, Destinations: []storage.Destination{{URL: "s3://h/b/out/"}}},
		{Kind: KindThumbnail, Format: JPEG, Manifest: true, Destinations: []storage.Destination{{URL: "s3://h/b/one.jpg"}, {URL: "s3://h/c/two.jpg"}}},
	}
	for _, tc := range []struct {
		name string
		all  bool
		want []string
	}{
		{"asked by one output", false, []string{"s3://h/b/one.manifest.json", "s3://h/c/two.manifest.json"}},
		{"THUMBD_UPLOAD_MANIFESTS", true, []string{"s3://h/b/one.manifest.json", "s3://h/b/out/manifest.json", "s3://h/c/two.manifest.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, func(c *Config) { c.UploadManifests = tc.all })
			mustComplete(t, h.run(t, "short.mp4", outputs...))
			var got []string
			for u := range h.objects.puts {
				if strings.HasSuffix(u, ".json") {
					got = append(got, u)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("manifests uploaded %q, want %q", got, tc.want)
			}
			if len(h.files.ct) != 2 {
				t.Errorf("kept %v, want both manifests", h.files.ct)
			}
		})
	}
}

// Several times and sizes in one thumbnail output: an image per
// combination, times first, each named for its time and size, in a kept
// folder or beside a destination file's name.
func TestEngineCombinations(t *testing.T) {
	h := newHarness(t)
	combo := Output{Kind: KindThumbnail, Times: []float64{0, 0.5}, Sizes: []Size{{64, 48}, {32, 32}}, UserTag: "c"}
	dest := combo
	dest.Destinations = []storage.Destination{{URL: "s3://h/b/thumbs/poster.png"}, {URL: "s3://h/b/folder/"}}
	sizesOnly := Output{Kind: KindThumbnail, FrameNumber: ptrTo(int64(2)), Sizes: []Size{{80, 60}, {40, 30}}, Format: JPEG}
	s := h.run(t, "short.mp4", combo, dest, sizesOnly)
	mustComplete(t, s)
	type shot struct {
		suffix string
		at     time.Duration
		w, h   int
	}
	// short.mp4 has 8 frames: 0.32 s.
	shots := []shot{{"_0_64x48", 0, 64, 48}, {"_0_32x32", 0, 32, 32}, {"_0.5_64x48", 160 * time.Millisecond, 64, 48}, {"_0.5_32x32", 160 * time.Millisecond, 32, 32}}
	kept := imagesOf(s, 0, KindImage)
	if len(kept) != len(shots) {
		t.Fatalf("%d kept images, want %d", len(kept), len(shots))
	}
	for i, im := range kept {
		sh := shots[i]
		if want := h.last + "/thumbnail-0" + sh.suffix + ".png"; im.Location.Key != want || im.N != i {
			t.Errorf("image %d: key %q n %d, want %q", i, im.Location.Key, im.N, want)
		}
		if im.Width != sh.w || im.Height != sh.h || im.UserTag != "c" || len(im.Frames) != 1 || im.Frames[0].Requested != sh.at {
			t.Errorf("image %d: %dx%d tag %q frames %+v, want %dx%d at %v", i, im.Width, im.Height, im.UserTag, im.Frames, sh.w, sh.h, sh.at)
		}
		img, _ := decode(t, h.path(im))
		if img.Bounds().Dx() != sh.w || img.Bounds().Dy() != sh.h {
			t.Errorf("image %d is %v, want %dx%d", i, img.Bounds().Size(), sh.w, sh.h)
		}
	}
	var got []string
	for u := range h.objects.puts {
		got = append(got, u)
	}
	var want []string
	for _, sh := range shots {
		want = append(want, "s3://h/b/thumbs/poster"+sh.suffix+".png", "s3://h/b/folder/thumbnail-1"+sh.suffix+".png")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("uploaded\n%q\nwant\n%q", got, want)
	}
	if n := len(imagesOf(s, 1, KindImage)); n != 2*len(shots) {
		t.Errorf("%d entries for the uploaded combinations, want %d", n, 2*len(shots))
	}
	// frame_number with a list of sizes: one position, the name says the size.
	sized := imagesOf(s, 2, KindImage)
	if len(sized) != 2 || sized[0].Location.Key != h.last+"/thumbnail-2_80x60.jpg" || sized[1].Location.Key != h.last+"/thumbnail-2_40x30.jpg" ||
		sized[0].Width != 80 || sized[1].Height != 30 {
		t.Errorf("sizes only: %+v", sized)
	}
}

func ptrTo[T any](v T) *T { return &v }

// A metadata output is ffprobe's description of the source, kept or
// uploaded, with a videos entry.
func TestEngineMetadata(t *testing.T) {
	h := newHarness(t)
	for _, outputs := range [][]Output{
		{{Kind: KindMetadata, UserTag: "meta"}, {Kind: KindMetadata, Destinations: []storage.Destination{{URL: "s3://h/b/info.json"}}}},
		{{Kind: KindThumbnail}, {Kind: KindMetadata}}, // with other outputs: the same source, one more ffprobe
	} {
		s := h.run(t, "short.mp4", outputs...)
		mustComplete(t, s)
		if s.Duration < 250*time.Millisecond || s.Duration > 350*time.Millisecond || s.SourceSize == 0 {
			t.Errorf("duration %v source size %d", s.Duration, s.SourceSize)
		}
		var metas []Video
		for _, v := range s.Videos {
			if v.Format == "json" {
				metas = append(metas, v)
			}
		}
		if want := len(outputs) - len(imagesOf(s, 0, KindImage)); len(metas) != want {
			t.Fatalf("videos %+v, want %d metadata entries", s.Videos, want)
		}
		for _, v := range metas {
			if v.Meta.Width != 160 || v.Meta.Height != 120 || v.Meta.VideoCodec != "h264" || v.Size == 0 {
				t.Errorf("metadata entry %+v", v)
			}
			var b []byte
			switch v.Location.Type {
			case "local":
				if want := fmt.Sprintf("%s/metadata-%d.json", h.last, v.Output); v.Location.Key != want {
					t.Errorf("kept as %q, want %q", v.Location.Key, want)
				}
				var err error
				if b, err = os.ReadFile(filepath.Join(h.files.dir, filepath.FromSlash(v.Location.Key))); err != nil {
					t.Fatal(err)
				}
				if ct := h.files.ct[v.Location.Key]; ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
			default:
				if v.Location.URL != "s3://h/b/info.json" || h.objects.puts[v.Location.URL] != v.Size {
					t.Errorf("uploaded %+v, puts %v", v.Location, h.objects.puts)
				}
				continue
			}
			var doc struct {
				Streams []struct {
					CodecType string `json:"codec_type"`
					Width     int    `json:"width"`
					Height    int    `json:"height"`
				} `json:"streams"`
				Format struct {
					Filename string `json:"filename"`
					Duration string `json:"duration"`
				} `json:"format"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatalf("metadata is not JSON: %v\n%s", err, b)
			}
			if len(doc.Streams) == 0 || doc.Streams[0].CodecType != "video" || doc.Streams[0].Width != 160 || doc.Streams[0].Height != 120 {
				t.Errorf("streams %+v", doc.Streams)
			}
			if doc.Format.Filename != h.base+"/short.mp4" || doc.Format.Duration == "" || int64(len(b)) != v.Size {
				t.Errorf("format %+v, size %d of %d", doc.Format, v.Size, len(b))
			}
		}
	}
	// A source without video still has metadata.
	s := h.run(t, "audio.m4a", Output{Kind: KindMetadata})
	mustComplete(t, s)
	if len(s.Videos) != 1 || s.Videos[0].Meta.AudioCodec != "aac" || s.Videos[0].Meta.Width != 0 || s.Duration < 900*time.Millisecond {
		t.Errorf("audio metadata: %+v, duration %v", s.Videos, s.Duration)
	}
}

// Several tasks at once share the workers and all finish.
func TestEngineConcurrentTasks(t *testing.T) {
	h := newHarness(t)
	var tasks []string
	for i := range 5 {
		tasks = append(tasks, h.start(t, "short.mp4", Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond, Sprite: i%2 == 0},
			Output{Kind: KindThumbnail, Format: WebP, Width: 64}))
	}
	for _, task := range tasks {
		s := h.wait(t, task)
		mustComplete(t, s)
		if len(s.Images) < 3 {
			t.Errorf("task %s: %d images", Redact(task), len(s.Images))
		}
	}
	entries, _ := os.ReadDir(h.workDir)
	if len(entries) != 0 {
		t.Errorf("work directory not cleaned: %d entries", len(entries))
	}
}

// Shutdown stops ffmpeg promptly and leaves the running task queued.
func TestEngineShutdownInterrupts(t *testing.T) {
	h := newHarness(t)
	task := h.start(t, "clip.mp4", Output{Kind: KindThumbnails, Interval: 100 * time.Millisecond, Format: WebP})
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := h.e.Status(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == StateEncoding {
			break
		}
		if s.State.Done() || time.Now().After(deadline) {
			t.Skipf("could not catch the task encoding: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	h.stop()
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Run took %v to stop", took)
	}
	s, err := h.e.Status(t.Context(), task)
	if err != nil || s.State != StateQueued {
		t.Errorf("after shutdown: %+v, %v; want queued", s, err)
	}
	if len(s.Images) != 0 {
		t.Errorf("interrupted task has images: %d", len(s.Images))
	}
	if _, err := os.Stat(filepath.Join(h.workDir, task)); !os.IsNotExist(err) {
		t.Errorf("work directory of the interrupted task left behind (%v)", err)
	}
	if err := h.e.Start(t.Context(), NewToken(), Spec{Source: h.base + "/clip.mp4", Outputs: []Output{{Kind: KindThumbnail}}}); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("Start after shutdown: %v, want ErrShuttingDown", err)
	}
}

func ptr[T any](v T) *T { return &v }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
