package engine

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/cliptest"
	"github.com/thumbd/thumbd/internal/frametest"
)

// unrotated undoes a clockwise rotation of a picture, so that frametest
// finds the band where the clip painted it.
type unrotated struct {
	image.Image
	rot int
}

func (u unrotated) Bounds() image.Rectangle {
	b := u.Image.Bounds()
	if u.rot == 90 || u.rot == 270 {
		return image.Rect(0, 0, b.Dy(), b.Dx())
	}
	return image.Rect(0, 0, b.Dx(), b.Dy())
}

func (u unrotated) At(x, y int) color.Color {
	b := u.Image.Bounds()
	switch u.rot {
	case 90: // turned clockwise: the top row is now the right column
		return u.Image.At(b.Min.X+b.Dx()-1-y, b.Min.Y+x)
	case 180:
		return u.Image.At(b.Min.X+b.Dx()-1-x, b.Min.Y+b.Dy()-1-y)
	case 270:
		return u.Image.At(b.Min.X+y, b.Min.Y+b.Dy()-1-x)
	}
	return u.Image.At(b.Min.X+x, b.Min.Y+y)
}

// frameShown reads the frame number painted in an image of a trap clip
// shown with a clockwise rotation.
func frameShown(t *testing.T, file string, rot int) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := frametest.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	u := unrotated{img, rot}
	n, err := frametest.Band{Rect: u.Bounds(), SrcH: 240, BandH: 40}.FrameNumber(u)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return n
}

// shownFrame is a frame as a decoder presents it: the ground truth a trap
// is checked against, read with ffprobe's decoder rather than thumbd's
// packet index.
type shownFrame struct {
	t   float64
	key bool
}

// shownFrames lists them; a frame without a timestamp (AVI) is placed at
// its number over the clip's nominal rate.
func shownFrames(t *testing.T, src string, rate float64) []shownFrame {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "frame=best_effort_timestamp_time,key_frame", "-of", "csv=p=0", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	var fs []shownFrame
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) < 2 || (f[0] != "0" && f[0] != "1") {
			continue // side data
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if f[1] == "N/A" {
			v, err = float64(len(fs))/rate, nil
		}
		if err != nil {
			t.Fatalf("ffprobe frame line %q", l)
		}
		fs = append(fs, shownFrame{t: v, key: f[0] == "1"})
	}
	return fs
}

// expect is the frame that a time (seconds on the source's clock) must get.
func expect(fs []shownFrame, at float64, acc ffmpeg.Accuracy) int {
	if acc == ffmpeg.AccuracyKeyframe {
		best := -1
		for i, f := range fs {
			if f.key && (best < 0 || math.Abs(f.t-at) <= math.Abs(fs[best].t-at)+1e-9) {
				best = i
			}
		}
		return best
	}
	for i, f := range fs {
		if f.t >= at-1e-6 {
			return i
		}
	}
	return len(fs) - 1
}

// keyAtOrBefore is the frame keyframe accuracy gets without an index: the
// keyframe at or before the time.
func keyAtOrBefore(fs []shownFrame, at float64) int {
	k := 0
	for i, f := range fs {
		if f.key && f.t <= at+1e-6 {
			k = i
		}
	}
	return k
}

// runOutputs plans outputs the way a task does (probe, index, planOutput,
// frameRequests), extracts them, and returns the frames with what each
// image shows.
func runOutputs(t *testing.T, src string, outputs []Output, indexed bool) (ffmpeg.Media, []*plannedFrame, []int) {
	t.Helper()
	ctx := context.Background()
	r := ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	m, err := r.Probe(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	var x *ffmpeg.FrameIndex
	if indexed {
		if x, err = r.Index(ctx, src, m, 2); err != nil {
			t.Logf("not indexed, as the engine would go on: %v", err)
			x = nil
		}
	}
	dir := t.TempDir()
	var plans []*outputPlan
	for i, o := range outputs {
		if o.Width == 0 {
			o.Width, o.Format = 160, PNG
		}
		p, err := planOutput(i, o, ffmpeg.AccuracyExact, m, x, dir)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	reqs, frames, _ := frameRequests(plans, m)
	scratch := filepath.Join(dir, "scratch")
	os.MkdirAll(scratch, 0o755)
	ex := &ffmpeg.Extractor{Runner: r, Workers: 2, Dir: scratch}
	res, _, err := ex.Extract(ctx, src, m, x, reqs)
	if err != nil {
		t.Fatal(err)
	}
	shows := make([]int, len(frames))
	for i, f := range frames {
		f.info = ffmpeg.FrameInfo{PTS: res[i].Frame.PTS - m.VideoStart, Keyframe: res[i].Frame.Keyframe}
		f.strategy = res[i].Strategy
		shows[i] = frameShown(t, f.file, m.Rotation)
	}
	return m, frames, shows
}

func frac(f float64) *float64 { return &f }
func frameNo(n int64) *int64  { return &n }

// TestTraps checks, on clips made for each trap the issue lists, that
// every image shows the frame it must (the first frame at or after the
// time in exact mode, the nearest keyframe in keyframe mode), that thumbd
// reports that frame's time and keyframe flag, and that the planned runs
// deliver every frame without falling back to input seeks.
func TestTraps(t *testing.T) {
	if testing.Short() {
		t.Skip("makes clips with ffmpeg")
	}
	// bframes: B-frames everywhere (a frame asked for is often a B-frame,
	// shown before the anchor decoded ahead of it).
	bframes := cliptest.Trap{Rate: "25", Frames: 50, X264: "keyint=25:min-keyint=25:scenecut=0:bframes=3:b-pyramid=normal"}
	series := func(iv float64, acc ffmpeg.Accuracy) Output {
		return Output{Kind: KindThumbnails, Interval: *dur(iv), Accuracy: acc}
	}
	// Single thumbnails get their own rendering, so that a run has branches
	// of different sizes and formats.
	single := func(o Output) Output { o.Kind, o.Width, o.Format = KindThumbnail, 96, WebP; return o }
	both := func(os ...Output) []Output {
		var out []Output
		for _, o := range os {
			out = append(out, o)
			k := o
			k.Accuracy = ffmpeg.AccuracyKeyframe
			out = append(out, k)
		}
		return out
	}
	tests := []struct {
		name    string
		clip    cliptest.Trap
		outputs []Output
		noIndex bool // do not index: plan input seeks
		seeks   bool // the index fails: input seeks all the same
		check   func(t *testing.T, m ffmpeg.Media, fs []shownFrame)
	}{
		{
			name: "requests at and past the last frame", clip: bframes,
			outputs: both(series(0.1, ""), single(Output{StartTime: dur(1.96)}), single(Output{StartTime: dur(1.97)}),
				single(Output{StartTime: dur(5)}), single(Output{Time: frac(1)}), single(Output{FrameNumber: frameNo(49)}),
				single(Output{FrameNumber: frameNo(60)}),
				// A rendering of its own: a branch with one frame.
				Output{Kind: KindThumbnail, StartTime: dur(0.5), Width: 64, Format: JPEG}),
		},
		{
			name: "the container lasts longer than the video",
			clip: cliptest.Trap{Rate: "25", Frames: 25, X264: "keyint=10:bframes=2", Audio: 3},
			outputs: both(series(0.2, ""), single(Output{Time: frac(1)}), single(Output{Time: frac(0.5)}),
				single(Output{StartTime: dur(2.5)})),
			check: func(t *testing.T, m ffmpeg.Media, fs []shownFrame) {
				if d := m.Duration().Seconds(); math.Abs(d-1) > 0.001 {
					t.Errorf("duration %.3fs, want the video's 1s, not the audio's 3s", d)
				}
			},
		},
		{
			name: "an MPEG-TS stream that starts at 10 s",
			clip: cliptest.Trap{Rate: "25", Frames: 50, X264: "keyint=12:bframes=2", Format: "mpegts", Extra: []string{"-output_ts_offset", "10"}},
			outputs: both(series(0.2, ""), single(Output{StartTime: dur(0)}), single(Output{FrameNumber: frameNo(13)}),
				single(Output{Time: frac(1)})),
			check: func(t *testing.T, m ffmpeg.Media, fs []shownFrame) {
				if m.VideoStart < 10*time.Second {
					t.Errorf("video starts at %v, want 10s or later", m.VideoStart)
				}
			},
		},
		{
			name: "variable frame rate",
			clip: cliptest.Trap{Rate: "25", Frames: 90, X264: "keyint=20:bframes=2",
				SetPTS: "if(lt(N,30),N*0.04,if(lt(N,60),1.2+(N-30)*0.1,4.2+(N-60)*0.02))"},
			outputs: both(series(0.15, ""), single(Output{StartTime: dur(1.25)}), single(Output{FrameNumber: frameNo(45)})),
			check: func(t *testing.T, m ffmpeg.Media, fs []shownFrame) {
				if math.Abs(fs[45].t-2.7) > 0.001 {
					t.Errorf("frame 45 at %.3fs: the clip is not the variable-rate clip the test means", fs[45].t)
				}
			},
		},
		{
			name: "open GOPs",
			clip: cliptest.Trap{Rate: "25", Frames: 60, X264: "keyint=12:min-keyint=12:scenecut=0:open-gop=1:bframes=3:b-pyramid=normal"},
			outputs: both(series(0.04, ""), single(Output{StartTime: dur(0.41)}), single(Output{StartTime: dur(0.44)}),
				single(Output{StartTime: dur(0.89)}), single(Output{StartTime: dur(1.4)})),
		},
		{
			name: "a 0.3 s clip",
			clip: cliptest.Trap{Rate: "30", Frames: 9, X264: "bframes=2"},
			outputs: both(series(0.1, ""), single(Output{Time: frac(0.5)}), single(Output{Time: frac(1)}),
				single(Output{StartTime: dur(0.29)}), single(Output{StartTime: dur(0.3)}), single(Output{StartTime: dur(1)})),
		},
		{
			name:    "one keyframe only",
			clip:    cliptest.Trap{Rate: "25", Frames: 75, X264: "keyint=1000:min-keyint=1000:scenecut=0:bframes=2"},
			outputs: both(series(0.5, ""), single(Output{StartTime: dur(2.9)})),
		},
		{
			name:    "a picture a player turns 90° clockwise",
			clip:    cliptest.Trap{Rate: "25", Frames: 25, X264: "keyint=10:bframes=2", Rotate: 90},
			outputs: both(series(0.2, ""), single(Output{StartTime: dur(0.5)})),
			check: func(t *testing.T, m ffmpeg.Media, fs []shownFrame) {
				// What ffmpeg's autorotate shows, the way thumbd reads it.
				if m.Rotation != 90 {
					t.Fatalf("rotation %d, want 90", m.Rotation)
				}
				ref := filepath.Join(t.TempDir(), "ref.png")
				if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-ss", "0.5", "-i", cliptest.MakeTrap(t, cliptest.Trap{Rate: "25", Frames: 25, X264: "keyint=10:bframes=2", Rotate: 90}),
					"-frames:v", "1", ref).CombinedOutput(); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
				if n := frameShown(t, ref, m.Rotation); n != 13 {
					t.Errorf("ffmpeg's own rotation shows frame %d read thumbd's way, want 13", n)
				}
			},
		},
		{
			name: "a picture a player turns 270° clockwise, without an index",
			clip: cliptest.Trap{Rate: "25", Frames: 25, X264: "keyint=10:bframes=2", Rotate: 270}, noIndex: true,
			outputs: []Output{series(0.2, ""), single(Output{StartTime: dur(0.5)})},
		},
		{
			name:    "Matroska (millisecond timestamps)",
			clip:    cliptest.Trap{Rate: "30000/1001", Frames: 60, X264: "keyint=15:bframes=3:b-pyramid=normal", Format: "matroska"},
			outputs: both(series(0.25, ""), single(Output{StartTime: dur(1.001)}), single(Output{FrameNumber: frameNo(59)})),
		},
		{
			name: "VP9 in WebM",
			clip: cliptest.Trap{Rate: "25", Frames: 50, Format: "webm",
				Codec: []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "12", "-b:v", "300k"}},
			outputs: both(series(0.2, ""), single(Output{StartTime: dur(1.5)})),
		},
		{
			name: "an MP4 cut with -c copy: its edit list starts in the middle of a GOP",
			clip: cliptest.Trap{Rate: "25", Frames: 100, X264: "keyint=25:min-keyint=25:scenecut=0:bframes=2", Cut: 0.5},
			outputs: both(series(0.2, ""), single(Output{StartTime: dur(0)}), single(Output{FrameNumber: frameNo(3)}),
				single(Output{Time: frac(1)})),
			check: func(t *testing.T, m ffmpeg.Media, fs []shownFrame) {
				if fs[0].key {
					t.Errorf("the first frame shown is a keyframe: the clip is not the cut the test means")
				}
			},
		},
		{
			name: "AVI with B-frames: packets without timestamps, no index, input seeks",
			clip: cliptest.Trap{Rate: "25", Frames: 50, X264: "keyint=12:bframes=2", Format: "avi"}, seeks: true,
			outputs: both(series(0.2, ""), single(Output{StartTime: dur(1.7)})),
		},
		{
			name: "without an index: input seeks", clip: bframes, noIndex: true,
			outputs: []Output{series(0.1, ""), single(Output{StartTime: dur(1.97)}), single(Output{StartTime: dur(5)}),
				single(Output{Time: frac(1)})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := cliptest.MakeTrap(t, tt.clip)
			fs := shownFrames(t, src, tt.clip.FPS())
			m, frames, shows := runOutputs(t, src, tt.outputs, !tt.noIndex)
			// The number painted in the first frame a player shows: 0, but
			// for a clip cut from a longer one.
			first := filepath.Join(t.TempDir(), "first.png")
			if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", src, "-frames:v", "1", first).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			offset := frameShown(t, first, m.Rotation)
			if tt.check != nil {
				tt.check(t, m, fs)
			}
			start := m.VideoStart.Seconds()
			for i, f := range frames {
				acc := f.want.Accuracy
				at := start + f.requested.Seconds()
				want := expect(fs, at, acc)
				if acc == ffmpeg.AccuracyKeyframe && (tt.noIndex || tt.seeks) {
					want = keyAtOrBefore(fs, at)
				}
				what := fmt.Sprintf("%s at %.3fs", acc, f.requested.Seconds())
				if got := shows[i] - offset; got != want {
					t.Errorf("%s: the image shows frame %d, want frame %d (%.3fs)", what, got, want, fs[want].t-start)
					continue
				}
				if got := f.info.PTS.Seconds() + start; math.Abs(got-fs[want].t) > 0.0015 {
					t.Errorf("%s: reported time %.4fs, but the image is frame %d at %.4fs", what, got-start, want, fs[want].t-start)
				}
				if f.info.Keyframe != fs[want].key {
					t.Errorf("%s: reported keyframe %v, frame %d is keyframe %v", what, f.info.Keyframe, want, fs[want].key)
				}
				seeks := tt.noIndex || tt.seeks
				switch {
				case seeks && f.strategy != ffmpeg.StrategyInputSeek:
					t.Errorf("%s: strategy %s without an index", what, f.strategy)
				case !seeks && (f.strategy == ffmpeg.StrategyInputSeek || f.strategy == ffmpeg.StrategyTail):
					t.Errorf("%s: strategy %s: the planned run did not deliver it", what, f.strategy)
				case acc == ffmpeg.AccuracyKeyframe && !seeks && !f.info.Keyframe:
					t.Errorf("%s: not a keyframe", what)
				}
			}
		})
	}
}
