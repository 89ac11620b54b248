package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// bigVideo is a 10-minute, ~70 MB QuickTime file with its index (moov) at
// the end, as ffmpeg and most cameras write them: reading it needs a seek
// to the end before anything else.
func bigVideo(t testing.TB) string {
	return makeMedia(t, "big-600s.mov",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
		"-f", "lavfi", "-i", "anoisesrc=r=16000:c=white",
		"-t", "600", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "8", "-g", "20",
		"-c:a", "pcm_s16le")
}

// TestRangeReadsOnlyWhatSeeksNeed takes a thumbnail at 50 % of a large file
// served by a plain web server and checks that the origin served a small
// part of it: the header, the index at the end, the last seconds (to find
// the last frame) and one GOP in the middle.
func TestRangeReadsOnlyWhatSeeksNeed(t *testing.T) {
	file := bigVideo(t)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	o := startOrigin(t, serveFiles(filepath.Dir(file)))
	g := startGateway(t, Config{Guard: allowAll})
	began := time.Now()
	snap := runTask(t, g, engine.Spec{Source: o.URL + "/" + filepath.Base(file)}, 0)
	if snap.State != engine.StateCompleted {
		t.Fatalf("task ended %s: %s", snap.State, snap.Error)
	}
	if snap.SourceSize != fi.Size() {
		t.Errorf("source_size = %d, want %d", snap.SourceSize, fi.Size())
	}
	if snap.Duration != 600*time.Second {
		t.Errorf("duration = %v, want 10m0s", snap.Duration)
	}
	read := o.bytes.Load()
	ratio := float64(read) / float64(fi.Size())
	t.Logf("thumbnail at 50%% of a %s file: the origin served %s (%.2f%%) in %d requests, %v",
		FormatSize(fi.Size()), FormatSize(read), 100*ratio, o.requests.Load(), time.Since(began).Round(time.Millisecond))
	t.Logf("ranges asked: %q", o.ranges)
	if ratio > 0.10 {
		t.Errorf("read %.1f%% of the file, want under 10%%; ranges asked: %q", 100*ratio, o.ranges)
	}
}
