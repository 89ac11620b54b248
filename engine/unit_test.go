package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// ---- size.go ----

func TestFit(t *testing.T) {
	tests := []struct {
		name       string
		srcW, srcH int
		o          Output
		want       Geometry
	}{
		{"default is the display size", 640, 240, Output{}, Geometry{W: 640, H: 240, ScaleW: 640, ScaleH: 240}},
		{"resolution landscape", 640, 360, Output{Resolution: 180}, Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 180}},
		{"resolution portrait", 360, 640, Output{Resolution: 180}, Geometry{W: 180, H: 320, ScaleW: 180, ScaleH: 320}},
		{"resolution square", 500, 500, Output{Resolution: 64}, Geometry{W: 64, H: 64, ScaleW: 64, ScaleH: 64}},
		{"width only", 640, 360, Output{Width: 320}, Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 180}},
		{"height only", 640, 360, Output{Height: 90}, Geometry{W: 160, H: 90, ScaleW: 160, ScaleH: 90}},
		{"width only portrait", 360, 640, Output{Width: 90}, Geometry{W: 90, H: 160, ScaleW: 90, ScaleH: 160}},
		{"rounding down", 640, 360, Output{Width: 100}, Geometry{W: 100, H: 56, ScaleW: 100, ScaleH: 56}},     // 56.25
		{"rounding up", 640, 360, Output{Width: 101}, Geometry{W: 101, H: 57, ScaleW: 101, ScaleH: 57}},       // 56.81
		{"rounding half", 640, 360, Output{Height: 9}, Geometry{W: 16, H: 9, ScaleW: 16, ScaleH: 9}},          // exact
		{"tiny width", 640, 360, Output{Width: 1}, Geometry{W: 1, H: 1, ScaleW: 1, ScaleH: 1}},                // 0.56 → at least 1
		{"tiny height", 640, 360, Output{Height: 1}, Geometry{W: 2, H: 1, ScaleW: 2, ScaleH: 1}},              // 1.78
		{"tiny resolution", 640, 360, Output{Resolution: 1}, Geometry{W: 2, H: 1, ScaleW: 2, ScaleH: 1}},      //
		{"extreme portrait width 1", 10, 1000, Output{Height: 1}, Geometry{W: 1, H: 1, ScaleW: 1, ScaleH: 1}}, // 0.01 → 1
		{"both, same aspect", 640, 360, Output{Width: 320, Height: 180}, Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 180}},
		{"both, same aspect, crop", 640, 360, Output{Width: 320, Height: 180, ResizeMode: ResizeCrop}, Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 180}},
		// 640x360 into 200x200: s = 200/640 → 200x112.5 → 113 (round half away), pad top (200-113)/2.
		{"both, scale pads top and bottom", 640, 360, Output{Width: 200, Height: 200}, Geometry{W: 200, H: 200, ScaleW: 200, ScaleH: 113, Y: 43}},
		{"both, explicit scale mode", 640, 360, Output{Width: 200, Height: 200, ResizeMode: ResizeScale}, Geometry{W: 200, H: 200, ScaleW: 200, ScaleH: 113, Y: 43}},
		// s = 200/360 → 355.6x200 → 356, cut (356-200)/2 from the left.
		{"both, crop cuts the sides", 640, 360, Output{Width: 200, Height: 200, ResizeMode: ResizeCrop}, Geometry{W: 200, H: 200, ScaleW: 356, ScaleH: 200, X: 78, Crop: true}},
		// portrait 360x640 into 320x180: s = 180/640 → 101.25x180, pad the sides.
		{"portrait source, landscape box, scale", 360, 640, Output{Width: 320, Height: 180}, Geometry{W: 320, H: 180, ScaleW: 101, ScaleH: 180, X: 109}},
		// s = 320/360 → 320x568.9 → 569, cut (569-180)/2 from the top.
		{"portrait source, landscape box, crop", 360, 640, Output{Width: 320, Height: 180, ResizeMode: ResizeCrop}, Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 569, Y: 194, Crop: true}},
		{"tiny box, scale", 640, 360, Output{Width: 2, Height: 100}, Geometry{W: 2, H: 100, ScaleW: 2, ScaleH: 1, Y: 49}},
		{"tiny box, crop", 1920, 1080, Output{Width: 1, Height: 1, ResizeMode: ResizeCrop}, Geometry{W: 1, H: 1, ScaleW: 2, ScaleH: 1, Crop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Fit(tt.srcW, tt.srcH, tt.o)
			if err != nil {
				t.Fatalf("Fit(%d, %d, %+v): %v", tt.srcW, tt.srcH, tt.o, err)
			}
			if got != tt.want {
				t.Errorf("Fit(%d, %d, %+v)\n got %+v\nwant %+v", tt.srcW, tt.srcH, tt.o, got, tt.want)
			}
		})
	}
}

func TestFitRejectsEmptySource(t *testing.T) {
	for _, s := range [][2]int{{0, 360}, {640, 0}, {-1, 10}} {
		if _, err := Fit(s[0], s[1], Output{Width: 100}); err == nil {
			t.Errorf("Fit(%d, %d): no error", s[0], s[1])
		}
	}
}

// TestFitInvariants sweeps sizes and checks the geometry is always drawable:
// a padded picture lies inside the box, a cropped box inside the picture,
// and the picture keeps its aspect ratio to within rounding.
func TestFitInvariants(t *testing.T) {
	srcs := [][2]int{{640, 360}, {360, 640}, {1920, 1080}, {720, 576}, {1, 1}, {3, 1000}, {1000, 3}, {641, 359}}
	boxes := [][2]int{{1, 1}, {2, 3}, {100, 100}, {160, 90}, {301, 201}, {1080, 1920}, {8192, 1}}
	for _, s := range srcs {
		for _, b := range boxes {
			for _, mode := range []ResizeMode{ResizeScale, ResizeCrop} {
				o := Output{Width: b[0], Height: b[1], ResizeMode: mode}
				g, err := Fit(s[0], s[1], o)
				if err != nil {
					t.Fatalf("Fit(%v, %+v): %v", s, o, err)
				}
				where := fmt.Sprintf("Fit(%dx%d, %dx%d %s) = %+v", s[0], s[1], b[0], b[1], mode, g)
				if g.W != b[0] || g.H != b[1] {
					t.Errorf("%s: image size is not the box", where)
				}
				if g.ScaleW < 1 || g.ScaleH < 1 || g.X < 0 || g.Y < 0 {
					t.Errorf("%s: empty picture or negative offset", where)
				}
				if g.Crop {
					if g.X+g.W > g.ScaleW || g.Y+g.H > g.ScaleH {
						t.Errorf("%s: crop window outside the picture", where)
					}
				} else if g.X+g.ScaleW > g.W || g.Y+g.ScaleH > g.H {
					t.Errorf("%s: padded picture outside the box", where)
				}
				// Aspect: ScaleW/ScaleH ≈ srcW/srcH, within one pixel of rounding
				// on the side that was derived (unless clamped to 1).
				if g.ScaleW > 1 && g.ScaleH > 1 {
					wantH := float64(g.ScaleW) * float64(s[1]) / float64(s[0])
					wantW := float64(g.ScaleH) * float64(s[0]) / float64(s[1])
					if math.Abs(wantH-float64(g.ScaleH)) > 1 && math.Abs(wantW-float64(g.ScaleW)) > 1 {
						t.Errorf("%s: picture aspect distorted (want h≈%.1f or w≈%.1f)", where, wantH, wantW)
					}
				}
			}
		}
	}
}

func TestFilterChain(t *testing.T) {
	tests := []struct {
		name   string
		g      Geometry
		f      ImageFormat
		hdr    bool
		want   []string // in this order
		absent []string
		suffix string
	}{
		{"plain png", Geometry{W: 320, H: 180, ScaleW: 320, ScaleH: 180}, PNG, false,
			[]string{"scale=320:180", "setsar=1"}, []string{"pad=", "crop=", "zscale", "tonemap"}, ",format=rgb24"},
		{"pad jpg", Geometry{W: 200, H: 200, ScaleW: 200, ScaleH: 113, Y: 43}, JPEG, false,
			[]string{"scale=200:113", "setsar=1", "pad=200:200:0:43"}, []string{"crop="}, ",format=yuvj420p"},
		{"crop webp", Geometry{W: 200, H: 200, ScaleW: 356, ScaleH: 200, X: 78, Crop: true}, WebP, false,
			[]string{"scale=356:200", "setsar=1", "crop=200:200:78:0"}, []string{"pad="}, ",format=yuv420p"},
		{"hdr tonemaps first", Geometry{W: 160, H: 90, ScaleW: 160, ScaleH: 90}, PNG, true,
			[]string{"zscale=t=linear", "tonemap=", "scale=160:90"}, nil, ",format=rgb24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FilterChain(tt.g, tt.f, tt.hdr)
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(got[pos:], w)
				if i < 0 {
					t.Fatalf("FilterChain = %q: missing %q (in order)", got, w)
				}
				pos += i + len(w)
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("FilterChain = %q: should not contain %q", got, a)
				}
			}
			if !strings.HasSuffix(got, tt.suffix) {
				t.Errorf("FilterChain = %q: want suffix %q", got, tt.suffix)
			}
			if tt.hdr && !strings.HasPrefix(got, tonemapChain+",") {
				t.Errorf("FilterChain = %q: HDR chain must come before scaling", got)
			}
		})
	}
}

func TestCodecArgs(t *testing.T) {
	tests := []struct {
		f       ImageFormat
		quality int
		want    []string
	}{
		{JPEG, 100, []string{"-c:v", "mjpeg", "-q:v", "2"}},
		{JPEG, 1, []string{"-c:v", "mjpeg", "-q:v", "31"}},
		{JPEG, 0, []string{"-c:v", "mjpeg", "-q:v", "6"}},   // default 85: 2+round(15*29/99)
		{JPEG, 50, []string{"-c:v", "mjpeg", "-q:v", "17"}}, // 2+round(50*29/99)
		{JPEG, 150, []string{"-c:v", "mjpeg", "-q:v", "2"}},
		{WebP, 0, []string{"-c:v", "libwebp", "-lossless", "0", "-quality", "80"}},
		{WebP, 55, []string{"-c:v", "libwebp", "-lossless", "0", "-quality", "55"}},
		{WebP, 100, []string{"-c:v", "libwebp", "-lossless", "0", "-quality", "100"}},
		{PNG, 0, []string{"-c:v", "png"}},
		{PNG, 30, []string{"-c:v", "png"}},
		{"", 0, []string{"-c:v", "png"}},
	}
	for _, tt := range tests {
		if got := CodecArgs(tt.f, tt.quality); !slices.Equal(got, tt.want) {
			t.Errorf("CodecArgs(%q, %d) = %q, want %q", tt.f, tt.quality, got, tt.want)
		}
	}
	// The jpg scale is monotonic and stays within mjpeg's 2..31.
	prev := 99
	for q := 1; q <= 100; q++ {
		a := CodecArgs(JPEG, q)
		v, err := strconv.Atoi(a[len(a)-1])
		if err != nil || v < 2 || v > 31 || v > prev {
			t.Fatalf("CodecArgs(jpg, %d) = %q (previous qscale %d)", q, a, prev)
		}
		prev = v
	}
}

// ---- task.go (pure parts) ----

func TestObjectURL(t *testing.T) {
	tests := []struct {
		dest string
		kind OutputKind
		name string
		want string
	}{
		{"s3://h/b/dir/pic.png", KindThumbnail, "thumbnail-0.png", "s3://h/b/dir/pic.png"},
		{"s3://h/b/dir/pic", KindThumbnail, "thumbnail-0.png", "s3://h/b/dir/pic"},
		{"s3://h/b/dir/", KindThumbnail, "thumbnail-0.png", "s3://h/b/dir/thumbnail-0.png"},
		{"s3://h/b/", KindThumbnail, "thumbnail-2.jpg", "s3://h/b/thumbnail-2.jpg"},
		{"s3://h/b/dir", KindThumbnails, "thumb_0001.png", "s3://h/b/dir/thumb_0001.png"},
		{"s3://h/b/dir/", KindThumbnails, "thumb_0001.png", "s3://h/b/dir/thumb_0001.png"},
		{"s3://h/b/dir/x.png", KindThumbnails, "thumb_0001.png", "s3://h/b/dir/thumb_0001.png"},
		{"s3://h/b/dir/x.JPG", KindThumbnails, "sprite_0001.jpg", "s3://h/b/dir/sprite_0001.jpg"},
		{"s3://h/b/dir/x.jpeg", KindThumbnails, "thumbnails.vtt", "s3://h/b/dir/thumbnails.vtt"},
		{"s3://h/b/dir/x.webp", KindThumbnails, "thumb_0002.webp", "s3://h/b/dir/thumb_0002.webp"},
		{"s3://h/b/dir/index.vtt", KindThumbnails, "thumb_0001.png", "s3://h/b/dir/thumb_0001.png"},
		{"s3://h/b/dir.v2", KindThumbnails, "thumb_0001.png", "s3://h/b/dir.v2/thumb_0001.png"},
		{"s3://h/b/dir/movie.mp4", KindThumbnails, "thumb_0001.png", "s3://h/b/dir/movie.mp4/thumb_0001.png"},
		{"s3://h:9000/b", KindThumbnails, "thumb_0001.png", "s3://h:9000/b/thumb_0001.png"},
	}
	for _, tt := range tests {
		if got := objectURL(tt.dest, tt.kind, 0, tt.name); got != tt.want {
			t.Errorf("objectURL(%q, %s, %q) = %q, want %q", tt.dest, tt.kind, tt.name, got, tt.want)
		}
	}
}

func TestSpriteArgs(t *testing.T) {
	if got := spritePattern("/w/tok/o1_f00011.png"); got != "/w/tok/o1_f%05d.png" {
		t.Errorf("spritePattern = %q", got)
	}
	args := spriteArgs("/w/tok/o1_f00011.png", 11, 4, 1, 3, []string{"-c:v", "png"}, "rgb24", "/w/tok/sheet.png")
	if after(args, "-start_number") != "11" || after(args, "-i") != "/w/tok/o1_f%05d.png" {
		t.Errorf("input part: %q", args)
	}
	if v := after(args, "-vf"); v != "trim=end_frame=3,tile=4x1,format=rgb24" {
		t.Errorf("-vf %q", v)
	}
	if args[len(args)-1] != "/w/tok/sheet.png" || after(args, "-frames:v") != "1" {
		t.Errorf("output part: %q", args)
	}
}

func TestPlanOutput(t *testing.T) {
	// An MPEG-TS-like source: the file starts at 1.456778 s, its video at
	// 1.48 s, 250 frames of 40 ms.
	m := ffmpeg.Media{Start: 1456778 * time.Microsecond, VideoStart: 1480 * time.Millisecond,
		LastFrame: 11440 * time.Millisecond, FrameDur: 40 * time.Millisecond, Width: 640, Height: 360, SARNum: 1, SARDen: 1}
	off := m.VideoStart - m.Start
	last := m.LastFrame - m.VideoStart
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	d := func(v time.Duration) *time.Duration { return &v }
	tests := []struct {
		name      string
		o         Output
		requested []time.Duration
		seek      []time.Duration
		w, h      int
	}{
		{"no position: start", Output{Kind: KindThumbnail}, []time.Duration{0}, []time.Duration{off}, 640, 360},
		{"time 0.5", Output{Kind: KindThumbnail, Time: f(0.5)}, []time.Duration{5 * time.Second}, []time.Duration{off + 5*time.Second}, 640, 360},
		{"time 1.0 is clamped to the last frame", Output{Kind: KindThumbnail, Time: f(1)}, []time.Duration{10 * time.Second}, []time.Duration{off + last - time.Millisecond}, 640, 360},
		{"start_time past the end", Output{Kind: KindThumbnail, StartTime: d(time.Minute)}, []time.Duration{time.Minute}, []time.Duration{off + last - time.Millisecond}, 640, 360},
		{"frame_number lands before the frame", Output{Kind: KindThumbnail, FrameNumber: n(10), Width: 320}, []time.Duration{400 * time.Millisecond}, []time.Duration{off + 400*time.Millisecond - 40*time.Millisecond/3}, 320, 180},
		{"thumbnails", Output{Kind: KindThumbnails, Interval: 3 * time.Second}, []time.Duration{0, 3 * time.Second, 6 * time.Second, 9 * time.Second},
			[]time.Duration{off, off + 3*time.Second, off + 6*time.Second, off + 9*time.Second}, 640, 360},
		{"sprite default tile", Output{Kind: KindThumbnails, Interval: 5 * time.Second, Sprite: true}, []time.Duration{0, 5 * time.Second},
			[]time.Duration{off, off + 5*time.Second}, 160, 90},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planOutput(3, tt.o, ffmpeg.AccuracyExact, m, nil, "/work")
			if err != nil {
				t.Fatal(err)
			}
			if p.geo.W != tt.w || p.geo.H != tt.h {
				t.Errorf("geometry %dx%d, want %dx%d", p.geo.W, p.geo.H, tt.w, tt.h)
			}
			if len(p.frames) != len(tt.requested) {
				t.Fatalf("%d frames, want %d", len(p.frames), len(tt.requested))
			}
			for i, fr := range p.frames {
				if fr.requested != tt.requested[i] {
					t.Errorf("frame %d: requested %v, want %v", i, fr.requested, tt.requested[i])
				}
				if !strings.HasPrefix(fr.file, "/work/o3_f") {
					t.Errorf("frame %d file %q", i, fr.file)
				}
			}
		})
	}
}

// ---- validate.go ----

func TestValidate(t *testing.T) {
	ok := Output{Kind: KindThumbnail}
	series := Output{Kind: KindThumbnails, Interval: time.Second}
	with := func(o Output, f func(*Output)) Output { f(&o); return o }
	fl := func(v float64) *float64 { return &v }
	spec := func(outs ...Output) Spec { return Spec{Source: "https://example.com/v.mp4", Outputs: outs} }
	tests := []struct {
		name  string
		s     Spec
		field string // "" = valid
	}{
		{"valid https", spec(ok), ""},
		{"valid http with port", Spec{Source: "http://127.0.0.1:8080/v.mp4", Outputs: []Output{series}}, ""},
		{"valid s3", Spec{Source: "s3://minio:9000/bucket/v.mp4", Outputs: []Output{ok}}, ""},
		{"valid everything", spec(with(series, func(o *Output) {
			o.Sprite, o.Columns, o.Rows, o.Width, o.Height, o.ResizeMode, o.Format, o.Quality = true, 100, 100, 8192, 1, ResizeCrop, WebP, 100
			o.Destinations = []storage.Destination{{URL: "s3://h/b/k/"}, {URL: "s3://h2:9000/b2/"}}
		})), ""},
		{"no source", Spec{Outputs: []Output{ok}}, "source"},
		{"blank source", Spec{Source: "  ", Outputs: []Output{ok}}, "source"},
		{"local path", Spec{Source: "/tmp/v.mp4", Outputs: []Output{ok}}, "source"},
		{"ftp", Spec{Source: "ftp://h/v.mp4", Outputs: []Output{ok}}, "source"},
		{"http without host", Spec{Source: "http:///v.mp4", Outputs: []Output{ok}}, "source"},
		{"s3 without bucket", Spec{Source: "s3://h", Outputs: []Output{ok}}, "source"},
		{"no outputs", spec(), "format"},
		{"bad kind", spec(Output{Kind: "advanced_hls"}), "format[0].output"},
		{"no interval", spec(ok, Output{Kind: KindThumbnails}), "format[1].interval"},
		{"short interval", spec(with(series, func(o *Output) { o.Interval = 50 * time.Millisecond })), "format[0].interval"},
		{"time above 1", spec(with(ok, func(o *Output) { o.Time = fl(1.5) })), "format[0].time"},
		{"time below 0", spec(with(ok, func(o *Output) { o.Time = fl(-0.1) })), "format[0].time"},
		{"negative frame number", spec(with(ok, func(o *Output) { v := int64(-1); o.FrameNumber = &v })), "format[0].frame_number"},
		{"negative start time", spec(with(ok, func(o *Output) { v := -time.Second; o.StartTime = &v })), "format[0].start_time"},
		{"width too large", spec(with(ok, func(o *Output) { o.Width = maxDimension + 1 })), "format[0].width"},
		{"negative height", spec(with(ok, func(o *Output) { o.Height = -1 })), "format[0].height"},
		{"resolution too large", spec(ok, ok, with(ok, func(o *Output) { o.Resolution = 10000 })), "format[2].resolution"},
		{"resize mode", spec(with(ok, func(o *Output) { o.ResizeMode = "fill" })), "format[0].resize_mode"},
		{"image format", spec(with(ok, func(o *Output) { o.Format = "gif" })), "format[0].image_format"},
		{"quality", spec(with(ok, func(o *Output) { o.Quality = 101 })), "format[0].quality"},
		{"columns", spec(with(series, func(o *Output) { o.Columns = maxColumns + 1 })), "format[0].columns"},
		{"rows", spec(with(series, func(o *Output) { o.Rows = -1 })), "format[0].rows"},
		{"destination", spec(with(ok, func(o *Output) { o.Destinations = []storage.Destination{{URL: "https://h/b/k"}} })), "format[0].destination.url"},
		{"second destination", spec(with(ok, func(o *Output) {
			o.Destinations = []storage.Destination{{URL: "s3://h/b/k"}, {URL: "s3://h"}}
		})), "format[0].destination[1].url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.s)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError for %s", err, tt.field)
			}
			if ve.Field != tt.field || ve.Reason == "" {
				t.Errorf("Validate: field %q reason %q, want field %q", ve.Field, ve.Reason, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// ---- engine.go ----

func TestValidTokenAndRedact(t *testing.T) {
	good := NewToken()
	if !ValidToken(good) {
		t.Fatalf("NewToken %q is not valid", good)
	}
	if NewToken() == good {
		t.Error("NewToken repeats itself")
	}
	for _, s := range []string{"", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
		"0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcd\u00e9"} {
		if ValidToken(s) {
			t.Errorf("ValidToken(%q) = true", s)
		}
	}
	if !ValidToken("0123456789abcdef0123456789abcdef") {
		t.Error("ValidToken rejects a good token")
	}
	for in, want := range map[string]string{"": "…", "abc": "…", "abcd": "…", "abcde": "abcd…", good: good[:4] + "…"} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestNewSession(t *testing.T) {
	c := &clock{time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("X", 3600))}
	tests := []struct {
		name string
		keys []string
		key  string
		want error
	}{
		{"any long key", nil, "abcdefghijkl", nil},
		{"too short", nil, "abcdefghijk", ErrBadAPIKey},
		{"empty", nil, "", ErrBadAPIKey},
		{"whitespace", nil, "abcdef ghijkl", ErrBadAPIKey},
		{"newline", nil, "abcdefghijkl\n", ErrBadAPIKey},
		{"configured, known", []string{"key-one-123456", "key-two-123456"}, "key-two-123456", nil},
		{"configured, unknown", []string{"key-one-123456"}, "key-three-123456", ErrUnknownAPIKey},
		{"configured, short still malformed", []string{"short"}, "short", ErrBadAPIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Config{APIKeys: tt.keys, TokenTTL: time.Hour, Now: c.now})
			tok, exp, err := e.NewSession(t.Context(), tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewSession(%q) error %v, want %v", tt.key, err, tt.want)
			}
			if err != nil {
				if tok != "" {
					t.Errorf("token %q returned with an error", tok)
				}
				return
			}
			if !ValidToken(tok) {
				t.Errorf("token %q is not valid", tok)
			}
			wantExp := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) // 02:04:05.6 UTC + 1 h, truncated
			if !exp.Equal(wantExp) || exp.Location() != time.UTC {
				t.Errorf("expires %v, want %v UTC (now+TTL truncated to the second)", exp, wantExp)
			}
			if _, err := e.CreateTask(t.Context(), tok); err != nil {
				t.Errorf("CreateTask with the new token: %v", err)
			}
		})
	}
}

func TestCreateTask(t *testing.T) {
	c := &clock{time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := New(Config{TokenTTL: time.Hour, Now: c.now})
	tok, exp, err := e.NewSession(t.Context(), "abcdefghijkl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTask(t.Context(), "not-a-token"); !errors.Is(err, ErrBadToken) {
		t.Errorf("malformed token: %v, want ErrBadToken", err)
	}
	if _, err := e.CreateTask(t.Context(), strings.ToUpper(tok)); !errors.Is(err, ErrBadToken) {
		t.Errorf("upper-case token: %v, want ErrBadToken", err)
	}
	if _, err := e.CreateTask(t.Context(), NewToken()); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("unknown token: %v, want ErrTokenNotFound", err)
	}
	c.t = exp.Add(-time.Nanosecond)
	task1, err := e.CreateTask(t.Context(), tok)
	if err != nil || !ValidToken(task1) || task1 == tok {
		t.Fatalf("CreateTask just before expiry = %q, %v", task1, err)
	}
	task2, _ := e.CreateTask(t.Context(), tok)
	if task2 == task1 {
		t.Error("two tasks share a token")
	}
	if s, err := e.Status(t.Context(), task1); err != nil || s.State != StateCreated {
		t.Errorf("Status of a new task = %+v, %v", s, err)
	}
	c.t = exp
	if _, err := e.CreateTask(t.Context(), tok); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("at expiry: %v, want ErrTokenNotFound", err)
	}
	c.t = exp.Add(time.Hour)
	if _, err := e.CreateTask(t.Context(), tok); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("after expiry: %v, want ErrTokenNotFound", err)
	}
	// Tasks outlive their session token.
	if _, err := e.Status(t.Context(), task1); err != nil {
		t.Errorf("Status after the session expired: %v", err)
	}
}

func TestStart(t *testing.T) {
	e := New(Config{})
	tok, _, err := e.NewSession(t.Context(), "abcdefghijkl")
	if err != nil {
		t.Fatal(err)
	}
	task, err := e.CreateTask(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	good := Spec{Source: "https://example.com/v.mp4", Outputs: []Output{{Kind: KindThumbnail}}, Payload: "p-1"}
	bad := Spec{Source: "https://example.com/v.mp4", Outputs: []Output{{Kind: KindThumbnails}}}

	if err := e.Start(t.Context(), "xyz", good); !errors.Is(err, ErrBadToken) {
		t.Errorf("malformed token: %v", err)
	}
	if err := e.Start(t.Context(), NewToken(), good); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	var ve *ValidationError
	if err := e.Start(t.Context(), task, bad); !errors.As(err, &ve) || ve.Field != "format[0].interval" {
		t.Errorf("invalid spec: %v", err)
	}
	if s, _ := e.Status(t.Context(), task); s.State != StateCreated {
		t.Errorf("a refused spec changed the state to %q", s.State)
	}
	if err := e.Start(t.Context(), task, good); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s, err := e.Status(t.Context(), task)
	if err != nil || s.State != StateQueued || s.Payload != "p-1" {
		t.Errorf("Status after Start = %+v, %v", s, err)
	}
	if err := e.Start(t.Context(), task, good); !errors.Is(err, ErrTaskStarted) {
		t.Errorf("second Start: %v, want ErrTaskStarted", err)
	}
	if _, err := e.Status(t.Context(), NewToken()); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("Status of unknown task: %v", err)
	}
}

func TestStartAfterShutdown(t *testing.T) {
	e := New(Config{WorkDir: t.TempDir(), Workers: 1})
	tok, _, _ := e.NewSession(t.Context(), "abcdefghijkl")
	task, _ := e.CreateTask(t.Context(), tok)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	err := e.Start(t.Context(), task, Spec{Source: "https://example.com/v.mp4", Outputs: []Output{{Kind: KindThumbnail}}})
	if !errors.Is(err, ErrShuttingDown) {
		t.Errorf("Start after shutdown: %v, want ErrShuttingDown", err)
	}
}

func TestSnapshotCloneIsDeep(t *testing.T) {
	s := Snapshot{Images: []Image{{Frames: []Frame{{Actual: 1}}}}}
	c := s.clone()
	c.Images[0].Frames[0].Actual = 2
	c.Images[0].N = 5
	if s.Images[0].Frames[0].Actual != 1 || s.Images[0].N != 0 {
		t.Error("clone shares memory with the original")
	}
}

// ---- helpers ----

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
