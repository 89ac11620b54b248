// Package cliptest makes the small video clips that the engine's and the
// ffmpeg package's tests run on, with ffmpeg itself, so that every test
// meets real files.
//
// testdata/clip.mp4 (repo root) is 10 s, 640x360, 25 fps H.264 with
// B-frames, GOP 50, AAC; its top 40 rows encode the frame number in 8
// blocks of 80 px, bit b white in block b.
package cliptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/frametest"
)

// NeedFFmpeg skips the test when ffmpeg or ffprobe is not on PATH.
func NeedFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH", tool)
		}
	}
}

var (
	clipsOnce sync.Once
	clipsDir  string
	clipsErr  error
)

// Cleanup removes the clips Dir made; call it from TestMain after m.Run.
func Cleanup() {
	if clipsDir != "" {
		os.RemoveAll(clipsDir)
	}
}

// Dir makes every edge-case clip once, in a directory shared by the
// tests, and returns it.
func Dir(t testing.TB) string {
	t.Helper()
	NeedFFmpeg(t)
	clipsOnce.Do(func() {
		began := time.Now()
		clipsDir, clipsErr = os.MkdirTemp("", "thumbd-engine-clips-")
		if clipsErr == nil {
			clipsErr = buildClips(clipsDir)
		}
		if testing.Verbose() {
			fmt.Printf("clips made in %v\n", time.Since(began).Round(time.Millisecond))
		}
	})
	if clipsErr != nil {
		t.Fatalf("making clips: %v", clipsErr)
	}
	return clipsDir
}

func buildClips(dir string) error {
	ff := func(out string, args ...string) error {
		full := append([]string{"-hide_banner", "-nostdin", "-v", "error", "-y"}, args...)
		full = append(full, filepath.Join(dir, out))
		cmd := exec.Command("ffmpeg", full...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(full, " "), err, b)
		}
		return nil
	}
	src, err := filepath.Abs("../testdata/clip.mp4")
	if err != nil {
		return err
	}
	if err := os.Symlink(src, filepath.Join(dir, "clip.mp4")); err != nil {
		return err
	}
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"}
	steps := []struct {
		out  string
		args []string
	}{
		// A white box in the top-left corner of a black 320x180 picture.
		{"box.mp4", append([]string{"-f", "lavfi", "-i", "color=black:s=320x180:r=25:d=1,drawbox=x=0:y=0:w=80:h=45:color=white:t=fill"}, x264...)},
		// ffmpeg 5.1's mov muxer turns the legacy rotate tag into a display
		// matrix (ffprobe then reports rotation = the tag, counter-clockwise).
		{"rot90.mp4", []string{"-i", "box.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90"}},
		{"rot180.mp4", []string{"-i", "box.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=180"}},
		{"rot270.mp4", []string{"-i", "box.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=270"}},
		{"sar.mp4", append([]string{"-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1,setsar=2"}, x264...)},
		// Video 2 s, audio 4 s.
		{"av.mp4", append([]string{"-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", "-f", "lavfi", "-i", "sine=d=4", "-c:a", "aac"}, x264...)},
		// MPEG-TS starts at 1.4 s; with B-frames the video starts at 1.48 s.
		{"clip.ts", []string{"-i", "clip.mp4", "-c", "copy", "-f", "mpegts"}},
		// Matroska has no stream duration, only a DURATION tag.
		{"clip.mkv", []string{"-i", "clip.mp4", "-c", "copy"}},
		{"short.mp4", append([]string{"-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.3"}, x264...)},
		// The first 4 s of clip.mp4 with a single keyframe.
		{"onekey.mp4", append([]string{"-i", "clip.mp4", "-t", "4", "-an", "-g", "1000", "-keyint_min", "1000", "-sc_threshold", "0", "-bf", "2"}, x264...)},
		{"onekey.ts", []string{"-i", "onekey.mp4", "-c", "copy", "-f", "mpegts"}},
		{"hdr.mp4", append([]string{"-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1",
			"-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"}, x264...)},
		{"audio.m4a", []string{"-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac"}},
	}
	for _, s := range steps {
		if err := ff(s.out, s.args...); err != nil {
			return err
		}
	}
	// clip.ts cut in half, on a packet boundary plus a few bytes: a damaged tail.
	ts, err := os.ReadFile(filepath.Join(dir, "clip.ts"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "truncated.ts"), ts[:len(ts)/2/188*188+100], 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("These are not the frames you are looking for.\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "empty.mp4"), nil, 0o644)
}

// Trap is a clip that sets a trap for frame extraction. It is 320x240: testsrc2 under a 40-row band in which each frame
// paints its sequence number (frametest reads it back), so that a test can
// tell which frame an image shows without trusting what thumbd reports.
type Trap struct {
	Rate   string   // frame rate of the generated frames
	Frames int      // how many
	X264   string   // -x264-params
	Codec  []string // encoder options instead of libx264's
	SetPTS string   // optional: new timestamps (seconds, of N), for variable frame rate
	Audio  float64  // seconds of audio; 0: none
	Format string   // muxer; default mp4
	Extra  []string
	Rotate int     // display rotation written into the MP4, clockwise degrees
	Cut    float64 // cut the clip at this time with "-ss T -c copy": an MP4 edit list that starts mid-GOP
}

// FPS is the clip's frame rate.
func (c Trap) FPS() float64 {
	rate := 1.0
	for i, part := range strings.Split(c.Rate, "/") {
		v, _ := strconv.ParseFloat(part, 64)
		if i == 0 {
			rate = v
		} else {
			rate /= v
		}
	}
	return rate
}

// MakeTrap writes the clip c describes into a temporary directory of t
// and returns its path.
func MakeTrap(t testing.TB, c Trap) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	dur := float64(c.Frames)/c.FPS() + 1
	graph := fmt.Sprintf("[1:v][0:v]vstack=inputs=2,trim=end_frame=%d", c.Frames)
	if c.SetPTS != "" {
		graph += ",settb=1/1000,setpts='(" + c.SetPTS + ")/TB'"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=320x200:r=%s:d=%g,format=yuv420p", c.Rate, dur),
		"-f", "lavfi", "-i", frametest.BandFilter(320, 40, 8, c.Rate, dur)}
	if c.Audio > 0 {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=d=%g", c.Audio))
	}
	args = append(args, "-filter_complex", graph+"[v]", "-map", "[v]")
	if c.Audio > 0 {
		args = append(args, "-map", "2:a", "-c:a", "aac")
	}
	if c.Codec != nil {
		args = append(args, c.Codec...)
	} else {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-x264-params", c.X264)
	}
	args = append(args, "-fps_mode", "passthrough")
	if c.SetPTS != "" {
		args = append(args, "-enc_time_base:v", "1:1000")
	}
	args = append(args, c.Extra...)
	ext := map[string]string{"": "mp4", "mpegts": "ts", "matroska": "mkv", "webm": "webm", "avi": "avi"}[c.Format]
	if c.Format != "" {
		args = append(args, "-f", c.Format)
	}
	out := filepath.Join(t.TempDir(), "clip."+ext)
	args = append(args, out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("making the clip: %v\n%s", err, b)
	}
	if c.Cut > 0 {
		cut := filepath.Join(filepath.Dir(out), "cut.mp4")
		if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", fmt.Sprint(c.Cut), "-i", out,
			"-c", "copy", cut).CombinedOutput(); err != nil {
			t.Fatalf("cutting the clip: %v\n%s", err, b)
		}
		out = cut
	}
	if c.Rotate != 0 {
		// The legacy tag is counter-clockwise in the matrix ffmpeg writes:
		// rotate=90 makes players turn the picture 90° anticlockwise.
		rot := filepath.Join(filepath.Dir(out), "rotated.mp4")
		if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", out, "-c", "copy",
			"-metadata:s:v:0", fmt.Sprintf("rotate=%d", (360-c.Rotate)%360), rot).CombinedOutput(); err != nil {
			t.Fatalf("rotating the clip: %v\n%s", err, b)
		}
		return rot
	}
	return out
}
