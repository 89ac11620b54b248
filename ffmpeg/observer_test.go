package ffmpeg

import (
	"context"
	"sync"
	"testing"
)

// processLog records what a Runner tells its ProcessObserver.
type processLog struct {
	mu      sync.Mutex
	running map[string]int
	started map[string]int
}

func (p *processLog) ProcessStarted(tool string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[tool]++
	p.started[tool]++
}

func (p *processLog) ProcessEnded(tool string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[tool]--
}

func TestProcessObserver(t *testing.T) {
	log := &processLog{running: map[string]int{}, started: map[string]int{}}
	r := Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe", Processes: log}
	ctx := context.Background()
	if _, _, err := r.Run(ctx, []string{"-hide_banner", "-version"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Probe(ctx, "../testdata/clip.mp4"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Run(ctx, []string{"-hide_banner", "-i", "no-such-file.mp4"}); err == nil {
		t.Fatal("ffmpeg on a missing file succeeded")
	}
	log.mu.Lock()
	if log.started["ffmpeg"] != 2 || log.started["ffprobe"] < 1 {
		t.Errorf("started %v, want ffmpeg twice and ffprobe at least once", log.started)
	}
	for tool, n := range log.running {
		if n != 0 {
			t.Errorf("%d %s processes still counted as running", n, tool)
		}
	}
	log.mu.Unlock()
	// A binary that cannot start is no process.
	r.FFmpeg = "/no/such/ffmpeg"
	if _, _, err := r.Run(ctx, []string{"-version"}); err == nil {
		t.Fatal("a missing ffmpeg ran")
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.started["ffmpeg"] != 2 {
		t.Errorf("a process that never started was counted")
	}
}
