package ffmpeg

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLastFrameArgs(t *testing.T) {
	g := Grab{Filter: "scale=10:10", Codec: []string{"-c:v", "png"}, Out: "/w/x.png"}
	args := LastFrameArgs("in.mp4", g)
	if v := after(args, "-filter:v"); v != "showinfo@g0,scale=10:10" {
		t.Errorf("-filter:v %q", v)
	}
	if count(args, "-i") != 1 || after(args, "-i") != "in.mp4" || !slices.Contains(args, "-sseof") {
		t.Errorf("want one input seeking from the end: %q", args)
	}
	if !slices.Contains(args, "-update") || args[len(args)-1] != g.Out || !containsSeq(args, g.Codec) {
		t.Errorf("bad output part: %q", args)
	}
	if slices.Contains(args, "-frames:v") {
		t.Errorf("the last-frame grab must not stop after one frame: %q", args)
	}
}

func TestLastShowinfo(t *testing.T) {
	log := "[showinfo@g0 @ 0x1] [info] config in time_base: 1/12800, frame_rate: 25/1\n" +
		"[showinfo@g0 @ 0x1] [info] n:   0 pts: 115200 pts_time:9 pos: 1 fmt:yuv420p sar:1/1 s:2x2 i:P iskey:1 type:I\n" +
		"[showinfo@g0 @ 0x1] [info] n:   1 pts: 126976 pts_time:9.92 pos: 1 fmt:yuv420p sar:1/1 s:2x2 i:P iskey:0 type:B\n" +
		"[showinfo@g0 @ 0x1] [info] n:   2 pts: 127488 pts_time:9.96 pos: 1 fmt:yuv420p sar:1/1 s:2x2 i:P iskey:0 type:P\n"
	got, ok := lastShowinfo([]byte(log))
	if !ok || got != (FrameInfo{PTS: 9960 * time.Millisecond}) {
		t.Errorf("lastShowinfo = %+v, %v; want 9.96s", got, ok)
	}
	if _, ok := lastShowinfo([]byte("nothing\n")); ok {
		t.Error("lastShowinfo found a frame in an empty log")
	}
}

func TestTail(t *testing.T) {
	log := "a\n[showinfo@g0 @ 0x1] n: 0\n\nframe=    1 fps=0\nb\n  c  \n"
	if got := tail([]byte(log), 2); got != "b; c" {
		t.Errorf("tail = %q", got)
	}
}

func TestFormatSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0.000000",
		-time.Second:                      "0.000000",
		1480 * time.Millisecond:           "1.480000",
		time.Microsecond:                  "0.000001",
		3723*time.Second + 5e5:            "3723.000500",
		9959 * time.Millisecond:           "9.959000",
		2*time.Hour + 40*time.Millisecond: "7200.040000",
	} {
		if got := FormatSeconds(d); got != want {
			t.Errorf("FormatSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestMediaDurationAndDisplaySize(t *testing.T) {
	tests := []struct {
		m          Media
		dur        time.Duration
		dispW, dis int
	}{
		{Media{VideoStart: 0, LastFrame: 9960 * time.Millisecond, FrameDur: 40 * time.Millisecond, Width: 640, Height: 360, SARNum: 1, SARDen: 1}, 10 * time.Second, 640, 360},
		{Media{VideoStart: 1480 * time.Millisecond, LastFrame: 11440 * time.Millisecond, FrameDur: 40 * time.Millisecond, Width: 640, Height: 360}, 10 * time.Second, 640, 360},
		{Media{Width: 320, Height: 240, SARNum: 2, SARDen: 1, FrameDur: 40 * time.Millisecond}, 40 * time.Millisecond, 640, 240},
		{Media{Width: 720, Height: 576, SARNum: 16, SARDen: 15}, 0, 768, 576},
		{Media{Width: 320, Height: 180, Rotation: 90}, 0, 180, 320},
		{Media{Width: 320, Height: 180, Rotation: 270}, 0, 180, 320},
		{Media{Width: 320, Height: 180, Rotation: 180}, 0, 320, 180},
		// SAR stretches the coded width, then the rotation swaps.
		{Media{Width: 320, Height: 240, SARNum: 2, SARDen: 1, Rotation: 90}, 0, 240, 640},
	}
	for i, tt := range tests {
		if d := tt.m.Duration(); d != tt.dur {
			t.Errorf("%d: Duration = %v, want %v", i, d, tt.dur)
		}
		if w, h := tt.m.DisplaySize(); w != tt.dispW || h != tt.dis {
			t.Errorf("%d: DisplaySize = %dx%d, want %dx%d", i, w, h, tt.dispW, tt.dis)
		}
	}
}

func TestParseClock(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"00:00:02.000000000": 2 * time.Second,
		"01:02:03.500000000": time.Hour + 2*time.Minute + 3500*time.Millisecond,
		"garbage":            0,
		"1:2":                0,
	} {
		if got := parseClock(s); got != want {
			t.Errorf("parseClock(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseProgress(t *testing.T) {
	log := "frame=10\nfps=0.0\nout_time_us=N/A\nprogress=continue\nframe=40\nout_time_us=1334000\nout_time=00:00:01.334000\nprogress=continue\n" +
		"frame=600\nout_time_us=20000000\nprogress=end\n"
	var got []time.Duration
	ends := 0
	ParseProgress(strings.NewReader(log), func(t time.Duration, end bool) {
		if end {
			ends++
			return
		}
		got = append(got, t)
	})
	if want := []time.Duration{1334 * time.Millisecond, 20 * time.Second}; !slices.Equal(got, want) || ends != 1 {
		t.Errorf("times %v ends %d, want %v and 1 end", got, ends, want)
	}
}

func TestParseEncoderHelp(t *testing.T) {
	opus := ParseEncoderHelp("libopus", []byte("Encoder libopus [libopus Opus]:\n    General capabilities: delay small\n    Supported sample rates: 48000 24000 16000 12000 8000\n    Supported sample formats: s16 flt\n"))
	if !opus.Found || !slices.Equal(opus.SampleRates, []int{48000, 24000, 16000, 12000, 8000}) || opus.PixFmts != nil {
		t.Errorf("libopus: %+v", opus)
	}
	svt := ParseEncoderHelp("libsvtav1", []byte("Encoder libsvtav1 [SVT-AV1(Scalable Video Technology for AV1) encoder]:\n    Supported pixel formats: yuv420p yuv420p10le\n"))
	if !svt.Found || !slices.Equal(svt.PixFmts, []string{"yuv420p", "yuv420p10le"}) {
		t.Errorf("libsvtav1: %+v", svt)
	}
	if fdk := ParseEncoderHelp("libfdk_aac", []byte("Codec 'libfdk_aac' is not recognized by FFmpeg.\n")); fdk.Found {
		t.Errorf("libfdk_aac found: %+v", fdk)
	}
	// "Encoder libx264rgb" must not count as libx264.
	if x := ParseEncoderHelp("libx264", []byte("Encoder libx264rgb [libx264 H.264 RGB]:\n")); x.Found {
		t.Errorf("libx264 found in libx264rgb's help")
	}
}

func count(args []string, s string) int {
	n := 0
	for _, a := range args {
		if a == s {
			n++
		}
	}
	return n
}

// after returns the argument that follows the first s.
func after(args []string, s string) string {
	i := slices.Index(args, s)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

func containsSeq(args, seq []string) bool {
	for i := 0; i+len(seq) <= len(args); i++ {
		if slices.Equal(args[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}
