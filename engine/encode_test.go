package engine

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/cliptest"
	"github.com/thumbd/thumbd/storage"
)

// makeClip writes a small test clip: 320x180 at 25 fps with a 440 Hz tone.
func makeClip(t *testing.T, seconds int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	d := strconv.Itoa(seconds)
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration="+d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration="+d,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
		"-shortest", path).CombinedOutput()
	if err != nil {
		t.Fatalf("making the clip: %v\n%s", err, out)
	}
	return path
}

// recordingStore is a MemoryStore that keeps every percent a task had.
type recordingStore struct {
	*MemoryStore
	mu       sync.Mutex
	percents []float64
}

func (s *recordingStore) UpdateTask(ctx context.Context, token string, f func(*TaskRecord) error) error {
	return s.MemoryStore.UpdateTask(ctx, token, func(r *TaskRecord) error {
		if err := f(r); err != nil {
			return err
		}
		s.mu.Lock()
		if n := len(s.percents); n == 0 || s.percents[n-1] != r.Snap.Percent {
			s.percents = append(s.percents, r.Snap.Percent)
		}
		s.mu.Unlock()
		return nil
	})
}

func runSpec(t *testing.T, runner ffmpeg.Runner, spec Spec) (Snapshot, *recordingStore, string, error) {
	t.Helper()
	files, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &recordingStore{MemoryStore: NewMemoryStore()}
	e := New(Config{Workers: 2, WorkDir: t.TempDir(), Files: files, Store: store, Runner: runner})
	ctx := context.Background()
	if !strings.Contains(spec.Source, "://") {
		// The engine reads only URLs: serve the local clip over HTTP.
		srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(spec.Source))))
		t.Cleanup(srv.Close)
		spec.Source = srv.URL + "/" + filepath.Base(spec.Source)
	}
	token := NewToken()
	if err := store.CreateTask(ctx, TaskRecord{Token: token, Spec: &spec, Snap: Snapshot{State: StateQueued}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	runErr := e.execute(ctx, token, spec, dir, nil)
	snap, err := e.Status(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	root := files.Dir()
	return snap, store, root, runErr
}

// keyframes returns the positions, in presentation order, of the key
// frames of a file's video stream.
func keyframes(t *testing.T, path string) []int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "json", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pj struct {
		Packets []struct {
			PTS   string `json:"pts_time"`
			Flags string `json:"flags"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &pj); err != nil {
		t.Fatal(err)
	}
	sort.Slice(pj.Packets, func(i, j int) bool {
		a, _ := strconv.ParseFloat(pj.Packets[i].PTS, 64)
		b, _ := strconv.ParseFloat(pj.Packets[j].PTS, 64)
		return a < b
	})
	var keys []int
	for i, p := range pj.Packets {
		if strings.Contains(p.Flags, "K") {
			keys = append(keys, i)
		}
	}
	return keys
}

// TestEncodeVideos makes an mp4, a webm and a thumbnail from one clip with
// the real ffmpeg and checks what ffprobe finds in each file against what
// the status reports.
func TestEncodeVideos(t *testing.T) {
	cliptest.NeedFFmpeg(t)
	src := makeClip(t, 4)
	spec := Spec{Source: src, Outputs: []Output{
		{Kind: KindThumbnail, Format: PNG, Width: 160},
		{Kind: KindMP4, Width: 160, Height: 120, StartTime: dur(1), UserTag: "small",
			Video: VideoSettings{Duration: 2 * time.Second, FrameRate: Rate{10, 1}, KeyframeTime: time.Second, AudioCodec: "libfdk_aac", Preset: "ultrafast"}},
		{Kind: KindWebM, Width: 96, Height: 96, ResizeMode: ResizeCrop,
			Video: VideoSettings{AudioMute: true, AudioChannels: 1, Preset: "ultrafast", KeyframeFrames: 20, FileExtension: "mkv"}},
	}}
	snap, store, root, err := runSpec(t, ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Images) != 1 || len(snap.Videos) != 2 {
		t.Fatalf("images %+v videos %+v", snap.Images, snap.Videos)
	}
	type want struct {
		w, h           int
		rate           Rate
		dur            float64
		vcodec, acodec string
		format, key    string
		gop            int
		channels       int
	}
	wants := []want{
		{w: 160, h: 120, rate: Rate{10, 1}, dur: 2, vcodec: "h264", acodec: "aac", format: "mp4", key: "video-1.mp4", gop: 10, channels: 2},
		{w: 96, h: 96, rate: Rate{25, 1}, dur: 4, vcodec: "vp9", acodec: "opus", format: "webm", key: "video-2.mkv", gop: 20, channels: 1},
	}
	for i, v := range snap.Videos {
		w := wants[i]
		if v.Output != i+1 || v.N != 0 || v.Format != w.format || v.Location.Type != "local" || !strings.HasSuffix(v.Location.Key, "/"+w.key) {
			t.Errorf("video %d: %+v", i, v)
		}
		m := v.Meta
		if m.Width != w.w || m.Height != w.h || m.FrameRate != w.rate || m.VideoCodec != w.vcodec || m.AudioCodec != w.acodec ||
			m.SAR != "1:1" || m.VideoBitrate <= 0 || v.Bitrate <= m.VideoBitrate {
			t.Errorf("video %d meta: %+v, bitrate %d", i, m, v.Bitrate)
		}
		if d := v.Duration.Seconds() - w.dur; d < -0.1 || d > 0.1 {
			t.Errorf("video %d: duration %v, want %vs", i, v.Duration, w.dur)
		}
		path := filepath.Join(root, filepath.FromSlash(v.Location.Key))
		fi, err := os.Stat(path)
		if err != nil || fi.Size() != v.Size {
			t.Errorf("video %d: file %v, size %d reported", i, err, v.Size)
			continue
		}
		keys := keyframes(t, path)
		frames := int(w.dur*w.rate.Float() + 0.5)
		var wantKeys []int
		for k := 0; k < frames; k += w.gop {
			wantKeys = append(wantKeys, k)
		}
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("video %d: key frames at %v, want %v", i, keys, wantKeys)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels", "-of", "csv=p=0", path).Output()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(w.channels) {
			t.Errorf("video %d: audio channels %q (%v), want %d", i, out, err, w.channels)
		}
	}
	if snap.Videos[0].UserTag != "small" {
		t.Errorf("user tag %q", snap.Videos[0].UserTag)
	}
	if len(snap.Warnings) != 1 || !strings.Contains(snap.Warnings[0].Details, "libfdk_aac") || snap.Warnings[0].Tag != "video-1-0" {
		t.Errorf("warnings %+v, want one about libfdk_aac", snap.Warnings)
	}
	if !slices.IsSorted(store.percents) {
		t.Errorf("percent went down: %v", store.percents)
	}
	between := 0
	for _, p := range store.percents {
		if p > 5 && p < 90 {
			between++
		}
	}
	if between == 0 {
		t.Errorf("no progress was reported while encoding: %v", store.percents)
	}
}

// TestVideoFailureNamesOutput fails the encode of one output and checks
// that the task's error names it and that the other outputs are not
// stored.
func TestVideoFailureNamesOutput(t *testing.T) {
	cliptest.NeedFFmpeg(t)
	src := makeClip(t, 2)
	fake := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = libvpx-vp9 ]; then echo 'Error initializing output stream 0:0 -- out of cheese' >&2; exit 1; fi\ndone\nexec ffmpeg \"$@\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Source: src, Outputs: []Output{
		{Kind: KindMP4, Width: 64, Video: VideoSettings{Preset: "ultrafast"}},
		{Kind: KindWebM, Width: 64},
		{Kind: KindThumbnail, Format: PNG},
	}}
	snap, _, _, err := runSpec(t, ffmpeg.Runner{FFmpeg: fake, FFprobe: "ffprobe"}, spec)
	if err == nil {
		t.Fatal("the task succeeded")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "format[1] (webm): ") || !strings.Contains(msg, "out of cheese") {
		t.Errorf("error %q does not name format[1] and ffmpeg's reason", msg)
	}
	if len(snap.Videos) != 0 || len(snap.Images) != 0 {
		t.Errorf("stored %d videos and %d images of a failed task", len(snap.Videos), len(snap.Images))
	}
}

func TestCheckEncoders(t *testing.T) {
	cliptest.NeedFFmpeg(t)
	noSVT := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\nif [ \"$3\" = encoder=libsvtav1 ]; then echo \"Codec 'libsvtav1' is not recognized by FFmpeg.\"; exit 0; fi\nexec ffmpeg \"$@\"\n"
	if err := os.WriteFile(noSVT, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ffmpeg string
		out    Output
		field  string
	}{
		{name: "H.264 and AAC", ffmpeg: "ffmpeg", out: Output{Kind: KindMP4}},
		{name: "libfdk_aac is let through", ffmpeg: "ffmpeg", out: Output{Kind: KindMP4, Video: VideoSettings{AudioCodec: "libfdk_aac"}}},
		{name: "SVT-AV1 takes no 4:2:2", ffmpeg: "ffmpeg", out: Output{Kind: KindWebM, Video: VideoSettings{VideoCodec: "libsvtav1", PixelFormat: "yuv422p"}}, field: "pix_format"},
		{name: "Opus takes no 44100 Hz", ffmpeg: "ffmpeg", out: Output{Kind: KindWebM, Video: VideoSettings{AudioRate: 44100}}, field: "audio_sample_rate"},
		{name: "an encoder this ffmpeg lacks", ffmpeg: noSVT, out: Output{Kind: KindMP4, Video: VideoSettings{VideoCodec: "libsvtav1"}}, field: "video_codec"},
	}
	for _, tc := range tests {
		e := New(Config{Runner: ffmpeg.Runner{FFmpeg: tc.ffmpeg, FFprobe: "ffprobe"}})
		err := e.checkEncoders(context.Background(), Spec{Outputs: []Output{{Kind: KindThumbnail}, tc.out}})
		var ve *ValidationError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &ve) || ve.Field != "format[1]."+tc.field):
			t.Errorf("%s: err = %v, want one on format[1].%s", tc.name, err, tc.field)
		}
	}
}

// TestEncodeProgress checks that a lone video's percent moves while ffmpeg
// encodes, from what ffmpeg reports on -progress, and only rises.
func TestEncodeProgress(t *testing.T) {
	cliptest.NeedFFmpeg(t)
	src := makeClip(t, 3)
	spec := Spec{Source: src, Outputs: []Output{{Kind: KindMP4, Width: 160, Video: VideoSettings{Preset: "ultrafast"}}}}
	_, store, _, err := runSpec(t, ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(store.percents) {
		t.Errorf("percent went down: %v", store.percents)
	}
	var during []float64
	for _, p := range store.percents {
		if p > 5 && p < 90 {
			during = append(during, p)
		}
	}
	if len(during) == 0 {
		t.Errorf("no percent between 5 and 90 while the only output encoded: %v", store.percents)
	}
}

// TestEncodeRotatedSource encodes a phone-style clip stored landscape with
// a 90° display matrix: the video comes out upright (portrait), with no
// rotation left for players to apply a second time.
func TestEncodeRotatedSource(t *testing.T) {
	cliptest.NeedFFmpeg(t)
	flat := makeClip(t, 1)
	rotated := filepath.Join(t.TempDir(), "rotated.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", flat, "-c", "copy",
		"-metadata:s:v:0", "rotate=90", rotated).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	spec := Spec{Source: rotated, Outputs: []Output{{Kind: KindMP4, Height: 160, Video: VideoSettings{Preset: "ultrafast"}}}}
	snap, _, root, err := runSpec(t, ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if m := snap.Videos[0].Meta; m.Width != 90 || m.Height != 160 || m.DAR != "9:16" {
		t.Errorf("meta %+v, want 90x160 (9:16)", m)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation",
		"-of", "csv=p=0", filepath.Join(root, snap.Videos[0].Location.Key)).Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("the output still carries a rotation: %q (%v)", out, err)
	}
}
