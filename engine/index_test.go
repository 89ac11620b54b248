package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countMessages is a slog handler that counts the records of one message.
type countMessages struct {
	msg string
	n   *atomic.Int32
}

func (c countMessages) Enabled(context.Context, slog.Level) bool { return true }
func (c countMessages) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}
func (c countMessages) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c countMessages) WithGroup(string) slog.Handler      { return c }

// keyedSources hands ffmpeg http(s) URLs as they are, as the engine does
// without Sources, naming their content by their URL (the gateway names it
// by the URL and the origin's validators), and counts the opens.
type keyedSources struct{ opens atomic.Int32 }

func (*keyedSources) Check(context.Context, string, string) error { return nil }
func (k *keyedSources) Open(_ context.Context, _, raw string) (OpenSource, error) {
	k.opens.Add(1)
	return keyed{direct{url: raw, name: raw}}, nil
}

type keyed struct{ direct }

func (k keyed) ContentKey() string { return k.url }

// TestIndexOnce starts tasks that each need the frame index of the same
// source at the same time: the source is indexed once, the other tasks
// wait for that index and share it, and every task completes with the
// images it asked for.
func TestIndexOnce(t *testing.T) {
	var indexed atomic.Int32
	h := newHarnessWith(t, func(c *Config) {
		c.Workers, c.Sources = 4, &keyedSources{}
		c.Logger = slog.New(countMessages{msg: "source indexed", n: &indexed})
	})
	const tasks = 4
	out := Output{Kind: KindThumbnails, Interval: 500 * time.Millisecond, Width: 64, Format: JPEG}
	tokens := make([]string, tasks)
	var wg sync.WaitGroup
	for i := range tasks {
		wg.Go(func() { tokens[i] = h.start(t, "clip.mp4", out) })
	}
	wg.Wait()
	for _, tok := range tokens {
		s := h.wait(t, tok)
		mustComplete(t, s)
		if got := len(imagesOf(s, 0, KindImage)); got != 20 {
			t.Errorf("task %s: %d images, want 20", Redact(tok), got)
		}
	}
	if n := indexed.Load(); n != 1 {
		t.Errorf("the source was indexed %d times for %d tasks at once, want once", n, tasks)
	}
}

// TestSeriesSourceOpenedOnce runs, on a queue that spreads, a series too
// short to be cut into chunks: the source the task job opened to count
// its images is the one the task is made from, opened once.
func TestSeriesSourceOpenedOnce(t *testing.T) {
	sources := &keyedSources{}
	sq := &memSpreader{MemoryQueue: NewMemoryQueue(16, 2), done: map[string]map[int]bool{}}
	h := newHarnessWith(t, func(c *Config) { c.Queue, c.PartOutputs, c.PartImages, c.Sources = sq, 8, 50, sources })
	s := h.run(t, "clip.mp4", Output{Kind: KindThumbnails, Interval: time.Second, Width: 64})
	mustComplete(t, s)
	if got := len(imagesOf(s, 0, KindImage)); got != 10 {
		t.Errorf("%d images, want 10", got)
	}
	if n := sources.opens.Load(); n != 1 {
		t.Errorf("the source was opened %d times, want once", n)
	}
}
