package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// switchable is an origin whose file and validators a test changes.
type switchable struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	modified time.Time
}

func (s *switchable) set(body []byte, etag string, modified time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag, s.modified = body, etag, modified
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, etag, mod := s.body, s.etag, s.modified
	s.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(w, r, "", mod, bytes.NewReader(body)) // a zero time sends no Last-Modified
}

// openKey opens raw through g and returns its ContentKey.
func openKey(t *testing.T, g *Gateway, task, raw string) string {
	t.Helper()
	src, err := g.Open(context.Background(), task, raw)
	if err != nil {
		t.Fatalf("open %s: %v", raw, err)
	}
	defer src.Close()
	return src.(engine.ContentKeyer).ContentKey()
}

// TestContentKey checks that a source's key stays while its content does
// and changes with anything that says the content may have changed.
func TestContentKey(t *testing.T) {
	data, err := os.ReadFile(clip(t))
	if err != nil {
		t.Fatal(err)
	}
	other := append(bytes.Clone(data), 0) // one byte longer
	day := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	sw := &switchable{}
	o := startOrigin(t, sw)
	dir := t.TempDir()
	file := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	up := &fakeUploads{dir: t.TempDir()}
	g := startGateway(t, Config{Guard: allowAll, Dirs: []string{dir}, Uploads: up})
	url := o.URL + "/clip.mp4"

	sw.set(data, `"v1"`, time.Time{})
	first := openKey(t, g, "t1", url)
	if first == "" {
		t.Fatal("an origin with an ETag gave no key")
	}
	httpCases := []struct {
		name     string
		body     []byte
		etag     string
		modified time.Time
		url      string
		same     bool // the key must equal first's
		none     bool // there must be no key
	}{
		{name: "unchanged", body: data, etag: `"v1"`, url: url, same: true},
		{name: "another ETag", body: data, etag: `"v2"`, url: url},
		{name: "another size, same ETag", body: other, etag: `"v1"`, url: url},
		{name: "another URL", body: data, etag: `"v1"`, url: url + "?x=1"},
		{name: "a Last-Modified as well", body: data, etag: `"v1"`, modified: day, url: url},
		{name: "no validators", body: data, url: url, none: true},
	}
	for _, tc := range httpCases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			sw.set(tc.body, tc.etag, tc.modified)
			k := openKey(t, g, "t1", tc.url)
			switch {
			case tc.none && k != "":
				t.Errorf("key %q for a source without validators", k)
			case tc.none:
			case tc.same && k != first:
				t.Errorf("key changed for the same content: %q, then %q", first, k)
			case !tc.same && (k == first || k == ""):
				t.Errorf("key %q, want a new one (first %q)", k, first)
			}
		})
	}
	t.Run("http/Last-Modified alone", func(t *testing.T) {
		sw.set(data, "", day)
		a := openKey(t, g, "t1", url)
		sw.set(data, "", day.Add(time.Second))
		b := openKey(t, g, "t1", url)
		if a == "" || b == "" || a == b {
			t.Errorf("keys %q then %q; want two different keys", a, b)
		}
	})

	t.Run("file", func(t *testing.T) {
		a := openKey(t, g, "t1", "file://"+file)
		if b := openKey(t, g, "t1", "file://"+file); a == "" || a != b {
			t.Fatalf("keys %q then %q for the same file", a, b)
		}
		if err := os.Chtimes(file, day, day); err != nil {
			t.Fatal(err)
		}
		b := openKey(t, g, "t1", "file://"+file)
		if b == a {
			t.Errorf("key unchanged after the file's modification time changed")
		}
		if err := os.WriteFile(file, other, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, day, day); err != nil {
			t.Fatal(err)
		}
		if c := openKey(t, g, "t1", "file://"+file); c == b || c == a {
			t.Errorf("key unchanged after the file's size changed")
		}
	})

	t.Run("upload", func(t *testing.T) {
		up.put(t, "t2", "one", data)
		up.put(t, "t3", "two", data)
		up.put(t, "t4", "three", other)
		a, b, c := openKey(t, g, "t2", "tus:one"), openKey(t, g, "t3", "tus:two"), openKey(t, g, "t4", "tus:three")
		if a == "" || a != b {
			t.Errorf("two uploads of the same bytes: keys %q and %q", a, b)
		}
		if c == a {
			t.Errorf("uploads of different bytes share the key %q", c)
		}
	})
}

// fakeUploads keeps uploads as files named task-id in dir.
type fakeUploads struct{ dir string }

func (u *fakeUploads) put(t *testing.T, task, id string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(u.dir, task+"-"+id), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (u *fakeUploads) Find(_ context.Context, task, id string) error {
	_, err := os.Stat(filepath.Join(u.dir, task+"-"+id))
	return err
}

func (u *fakeUploads) Open(_ context.Context, task, id string) (*os.File, error) {
	return os.Open(filepath.Join(u.dir, task+"-"+id))
}

func (u *fakeUploads) Remove(task string) error { return nil }

// TestProbeReusedUntilTheSourceChanges runs tasks on one engine against an
// origin whose file changes: the source is probed once while its ETag
// stays, again when the ETag (and the file) change, and every time when
// the origin sends no validator.
func TestProbeReusedUntilTheSourceChanges(t *testing.T) {
	long, err := os.ReadFile(clip(t))
	if err != nil {
		t.Fatal(err)
	}
	short, err := os.ReadFile(makeMedia(t, "short-4s.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	probes := filepath.Join(dir, "probes")
	wrapper := filepath.Join(dir, "ffprobe")
	script := fmt.Sprintf("#!/bin/sh\necho run >> '%s'\nexec ffprobe \"$@\"\n", probes)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		b, err := os.ReadFile(probes)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		return strings.Count(string(b), "\n")
	}

	sw := &switchable{}
	o := startOrigin(t, sw)
	g := startGateway(t, Config{Guard: allowAll})
	files, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Config{Workers: 2, WorkDir: t.TempDir(), Files: files, Sources: g,
		Runner: ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: wrapper}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	sess, _, err := eng.NewSession(ctx, "source-test-key-01")
	if err != nil {
		t.Fatal(err)
	}
	run := func() engine.Snapshot {
		t.Helper()
		task, err := eng.CreateTask(ctx, sess)
		if err != nil {
			t.Fatal(err)
		}
		half := 0.5
		spec := engine.Spec{Source: o.URL + "/video.mp4", Outputs: []engine.Output{{Kind: engine.KindThumbnail, Time: &half, Width: 160, Format: engine.JPEG}}}
		if err := eng.Start(ctx, task, spec); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			snap, err := eng.Status(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			if snap.State.Done() {
				if snap.State != engine.StateCompleted {
					t.Fatalf("task ended %s: %s", snap.State, snap.Error)
				}
				return snap
			}
		}
		t.Fatal("the task did not end within 60s")
		return engine.Snapshot{}
	}

	steps := []struct {
		name   string
		body   []byte
		etag   string
		probes int // ffprobe runs so far
		dur    time.Duration
	}{
		{"first sight", long, `"a"`, 1, 10 * time.Second},
		{"same ETag", long, `"a"`, 1, 10 * time.Second},
		{"same ETag again", long, `"a"`, 1, 10 * time.Second},
		{"new ETag, new file", short, `"b"`, 2, 4 * time.Second},
		{"back to the first", long, `"a"`, 2, 10 * time.Second},
		{"no validator", short, "", 3, 4 * time.Second},
		{"no validator again", short, "", 4, 4 * time.Second},
	}
	for _, s := range steps {
		sw.set(s.body, s.etag, time.Time{})
		snap := run()
		if got := count(); got != s.probes || snap.Duration != s.dur {
			t.Errorf("%s: %d ffprobe runs, duration %v; want %d runs, %v", s.name, got, snap.Duration, s.probes, s.dur)
		}
	}
}
