package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{in: "29.97", want: Rate{30000, 1001}},
		{in: "23.976", want: Rate{24000, 1001}},
		{in: "23.98", want: Rate{24000, 1001}},
		{in: "59.94", want: Rate{60000, 1001}},
		{in: "25", want: Rate{25, 1}},
		{in: " 30 ", want: Rate{30, 1}},
		{in: "12.5", want: Rate{25, 2}},
		{in: "30000/1001", want: Rate{30000, 1001}},
		{in: "50/2", want: Rate{25, 1}},
		{in: "0", wantErr: true},
		{in: "-25", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "30/0", wantErr: true},
		{in: "NaN", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseRate(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRate(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if s := (Rate{30000, 1001}).Decimal(); s != "29.97" {
		t.Errorf("Decimal = %q", s)
	}
	if s := (Rate{25, 1}).String(); s != "25" {
		t.Errorf("String = %q", s)
	}
}

// media1080 is a 35 s 1920x1080 25 fps source.
var media1080 = ffmpeg.Media{Width: 1920, Height: 1080, SARNum: 1, SARDen: 1, FrameDur: 40 * time.Millisecond,
	LastFrame: 35*time.Second - 40*time.Millisecond}

func dur(s float64) *time.Duration { d := time.Duration(s * float64(time.Second)); return &d }
func intp(n int) *int              { return &n }

func TestPlanVideo(t *testing.T) {
	seed := Output{Kind: KindMP4, Width: 360, Height: 240, StartTime: dur(10),
		Video: VideoSettings{Duration: 20 * time.Second, FrameRate: Rate{30000, 1001}, KeyframeFrames: 25, FileExtension: "mp4"}}
	tests := []struct {
		name    string
		out     Output
		media   ffmpeg.Media
		wantW   int
		wantH   int
		filter  string
		gop     int
		fixed   bool
		seek    time.Duration
		clip    time.Duration
		wantErr string
	}{
		{name: "the seed query: letterboxed 360x240 at 29.97 fps, GOP 25, 10 s to 30 s", out: seed, media: media1080,
			wantW: 360, wantH: 240, filter: "fps=30000/1001,scale=360:203:flags=bicubic,setsar=1,pad=360:240:0:18:color=black,format=yuv420p",
			gop: 25, fixed: true, seek: 10 * time.Second, clip: 20 * time.Second},
		{name: "crop fills the box", out: Output{Kind: KindMP4, Width: 360, Height: 240, ResizeMode: ResizeCrop}, media: media1080,
			wantW: 360, wantH: 240, filter: "scale=427:240:flags=bicubic,setsar=1,crop=360:240:33:0,format=yuv420p",
			gop: defaultKeyframe, clip: 35 * time.Second},
		{name: "an odd proportional side is made even", out: Output{Kind: KindWebM, Resolution: 240}, media: media1080,
			wantW: 426, wantH: 240, filter: "scale=426:240:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, clip: 35 * time.Second},
		{name: "an odd given width is made even", out: Output{Kind: KindMP4, Width: 321}, media: media1080,
			wantW: 320, wantH: 180, filter: "scale=320:180:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, clip: 35 * time.Second},
		{name: "keyframe in seconds at the output rate", out: Output{Kind: KindMP4, Width: 640,
			Video: VideoSettings{FrameRate: Rate{30, 1}, KeyframeTime: 2 * time.Second}}, media: media1080,
			wantW: 640, wantH: 360, filter: "fps=30,scale=640:360:flags=bicubic,setsar=1,format=yuv420p", gop: 60, fixed: true, clip: 35 * time.Second},
		{name: "framerate_limit lowers a faster source", out: Output{Kind: KindMP4, Width: 640, Video: VideoSettings{FrameRateLimit: Rate{24, 1}}}, media: media1080,
			wantW: 640, wantH: 360, filter: "fps=24,scale=640:360:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, clip: 35 * time.Second},
		{name: "framerate_limit leaves a slower source", out: Output{Kind: KindMP4, Width: 640, Video: VideoSettings{FrameRateLimit: Rate{60, 1}}}, media: media1080,
			wantW: 640, wantH: 360, filter: "scale=640:360:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, clip: 35 * time.Second},
		{name: "a duration past the end is cut at the end", out: Output{Kind: KindMP4, Width: 640, StartTime: dur(30), Video: VideoSettings{Duration: 20 * time.Second}}, media: media1080,
			wantW: 640, wantH: 360, filter: "scale=640:360:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, seek: 30 * time.Second, clip: 5 * time.Second},
		{name: "a rotated, deinterlaced, HDR source", out: Output{Kind: KindMP4, Height: 480, Video: VideoSettings{Deinterlace: true, PixelFormat: "yuv422p"}},
			media: ffmpeg.Media{Width: 1920, Height: 1080, SARNum: 1, SARDen: 1, Rotation: 90, Transfer: "smpte2084", FrameDur: 40 * time.Millisecond, LastFrame: 9960 * time.Millisecond},
			wantW: 270, wantH: 480, filter: "yadif=mode=send_frame:deint=all," + tonemapChain + ",scale=270:480:flags=bicubic,setsar=1,format=yuv422p",
			gop: defaultKeyframe, clip: 10 * time.Second},
		{name: "the seek counts from the start of the file", out: Output{Kind: KindMP4, Width: 640, StartTime: dur(1)},
			media: ffmpeg.Media{Width: 1920, Height: 1080, SARNum: 1, SARDen: 1, Start: time.Second, VideoStart: 1500 * time.Millisecond, FrameDur: 40 * time.Millisecond, LastFrame: 11460 * time.Millisecond},
			wantW: 640, wantH: 360, filter: "scale=640:360:flags=bicubic,setsar=1,format=yuv420p", gop: defaultKeyframe, seek: 1500 * time.Millisecond, clip: 9 * time.Second},
		{name: "start_time past the end", out: Output{Kind: KindMP4, StartTime: dur(40)}, media: media1080,
			wantErr: "start_time: 40.000s is at or past the end of the video, which is 35.000s long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planVideo(3, tc.out, tc.media, "/work", 2)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.geo.W != tc.wantW || p.geo.H != tc.wantH {
				t.Errorf("size %dx%d, want %dx%d", p.geo.W, p.geo.H, tc.wantW, tc.wantH)
			}
			if p.enc.Filter != tc.filter {
				t.Errorf("filter\n got %s\nwant %s", p.enc.Filter, tc.filter)
			}
			if p.enc.GOP != tc.gop || p.enc.FixedGOP != tc.fixed {
				t.Errorf("GOP %d fixed %v, want %d %v", p.enc.GOP, p.enc.FixedGOP, tc.gop, tc.fixed)
			}
			if p.enc.Seek != tc.seek || p.clip != tc.clip {
				t.Errorf("seek %v clip %v, want %v %v", p.enc.Seek, p.clip, tc.seek, tc.clip)
			}
			if p.enc.Threads != 2 || !strings.HasPrefix(p.enc.Out, "/work/o3_video.") {
				t.Errorf("threads %d out %s", p.enc.Threads, p.enc.Out)
			}
			if p.weight <= 0 {
				t.Errorf("weight %v", p.weight)
			}
		})
	}
}

func TestEncodeArgs(t *testing.T) {
	seed := videoEncode{Seek: 10 * time.Second, Duration: 20 * time.Second, Filter: "fps=30000/1001,scale=360:240", Muxer: "mp4",
		VideoCodec: "libx264", Profile: "main", GOP: 25, FixedGOP: true, AudioCodec: "aac", AudioRate: 44100, AudioBits: 64,
		Channels: 2, Threads: 1, Out: "/w/o0_video.mp4", FastStart: true}
	want := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1",
		"-ss", "10.000000", "-protocol_whitelist", "http,https,tcp,tls", "-i", "https://src/v.mp4", "-map", "0:v:0", "-map", "0:a:0?", "-t", "20.000000",
		"-filter:v", "fps=30000/1001,scale=360:240", "-c:v", "libx264", "-crf", "23", "-profile:v", "main",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-threads", "1",
		"-c:a", "aac", "-b:a", "64k", "-ar", "44100", "-ac", "2", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
		"-movflags", "+faststart", "-f", "mp4", "/w/o0_video.mp4"}
	if got := encodeArgs("https://src/v.mp4", seed); !slices.Equal(got, want) {
		t.Errorf("seed encode:\n got %q\nwant %q", got, want)
	}

	with := func(f func(j *videoEncode)) videoEncode {
		j := seed
		f(&j)
		return j
	}
	tests := []struct {
		name    string
		enc     videoEncode
		has     [][]string // each must appear, in this order, as consecutive arguments
		hasNot  []string
		lastTwo []string
	}{
		{name: "bitrate alone", enc: with(func(j *videoEncode) { j.Bitrate = 800 }),
			has: [][]string{{"-b:v", "800k"}}, hasNot: []string{"-crf"}},
		{name: "quality capped by bitrate", enc: with(func(j *videoEncode) { j.CRF = intp(20); j.Bitrate = 800 }),
			has: [][]string{{"-crf", "20", "-maxrate", "800k", "-bufsize", "1600k"}}},
		{name: "a preset", enc: with(func(j *videoEncode) { j.Preset = "veryfast" }), has: [][]string{{"-c:v", "libx264", "-preset", "veryfast"}}},
		{name: "scene cuts allowed without a keyframe setting", enc: with(func(j *videoEncode) { j.GOP, j.FixedGOP = 90, false }),
			has: [][]string{{"-g", "90"}}, hasNot: []string{"-sc_threshold", "-keyint_min"}},
		{name: "no seek, no duration", enc: with(func(j *videoEncode) { j.Seek, j.Duration = 0, 0 }), hasNot: []string{"-ss", "-t"}},
		{name: "silence instead of the sound", enc: with(func(j *videoEncode) { j.Mute = true }),
			has:    [][]string{{"-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=44100"}, {"-map", "0:v:0", "-map", "1:a:0", "-shortest"}},
			hasNot: []string{"0:a:0?"}},
		{name: "H.265 in mp4", enc: with(func(j *videoEncode) { j.VideoCodec, j.Profile, j.HEVCTagHvc1 = "libx265", "", true }),
			has:    [][]string{{"-c:v", "libx265", "-crf", "28", "-x265-params", "log-level=error:keyint=25:min-keyint=25:scenecut=0", "-tag:v", "hvc1"}},
			hasNot: []string{"-g"}},
		{name: "VP9 and Opus in webm", enc: with(func(j *videoEncode) {
			j.VideoCodec, j.Profile, j.AudioCodec, j.AudioRate, j.Muxer, j.FastStart, j.Out = "libvpx-vp9", "", "libopus", 48000, "webm", false, "/w/o.webm"
		}),
			has: [][]string{{"-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-g", "25", "-keyint_min", "25"},
				{"-c:a", "libopus", "-b:a", "64k", "-ar", "48000"}},
			hasNot: []string{"-movflags", "-sc_threshold"}, lastTwo: []string{"webm", "/w/o.webm"}},
		{name: "VP9 constrained quality and a fast preset", enc: with(func(j *videoEncode) {
			j.VideoCodec, j.Profile, j.CRF, j.Bitrate, j.Preset = "libvpx-vp9", "", intp(30), 500, "ultrafast"
		}),
			has: [][]string{{"-crf", "30", "-b:v", "500k", "-deadline", "good", "-cpu-used", "8"}}},
		{name: "VP8 gets a bitrate cap with its CRF", enc: with(func(j *videoEncode) { j.VideoCodec, j.Profile = "libvpx", "" }),
			has: [][]string{{"-c:v", "libvpx", "-crf", "10", "-b:v", "10M"}}, hasNot: []string{"-row-mt"}},
		{name: "SVT-AV1", enc: with(func(j *videoEncode) { j.VideoCodec, j.Profile, j.Preset = "libsvtav1", "", "slow" }),
			has: [][]string{{"-c:v", "libsvtav1", "-crf", "35", "-preset", "6", "-g", "25"}}},
		{name: "SVT-AV1 by bitrate", enc: with(func(j *videoEncode) { j.VideoCodec, j.Profile, j.Bitrate = "libsvtav1", "", 900 }),
			has: [][]string{{"-c:v", "libsvtav1", "-b:v", "900k", "-preset", "8"}}, hasNot: []string{"-crf"}},
		{name: "libaom", enc: with(func(j *videoEncode) { j.VideoCodec, j.Profile = "libaom-av1", "" }),
			has: [][]string{{"-c:v", "libaom-av1", "-crf", "32", "-b:v", "0", "-cpu-used", "4", "-row-mt", "1", "-g", "25", "-keyint_min", "25"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := encodeArgs("in.mp4", tc.enc)
			for _, seq := range tc.has {
				if !containsSeq(args, seq) {
					t.Errorf("args lack %q:\n%q", seq, args)
				}
			}
			for _, a := range tc.hasNot {
				if slices.Contains(args, a) {
					t.Errorf("args have %q:\n%q", a, args)
				}
			}
			if tc.lastTwo != nil && !slices.Equal(args[len(args)-2:], tc.lastTwo) {
				t.Errorf("args end with %q, want %q", args[len(args)-2:], tc.lastTwo)
			}
		})
	}
}

func TestValidateVideo(t *testing.T) {
	ok := func(f func(o *Output)) Output {
		o := Output{Kind: KindMP4}
		f(&o)
		return o
	}
	tests := []struct {
		name  string
		out   Output
		field string // "" = valid
	}{
		{name: "defaults", out: Output{Kind: KindMP4}},
		{name: "webm defaults", out: Output{Kind: KindWebM}},
		{name: "the seed query", out: ok(func(o *Output) {
			o.Width, o.Height, o.StartTime = 360, 240, dur(10)
			o.Video = VideoSettings{Duration: 20 * time.Second, FrameRate: Rate{30000, 1001}, KeyframeFrames: 25, FileExtension: "mp4"}
		})},
		{name: "H.264 in webm", out: Output{Kind: KindWebM, Video: VideoSettings{VideoCodec: "libx264"}}, field: "video_codec"},
		{name: "Vorbis in mp4", out: ok(func(o *Output) { o.Video.AudioCodec = "libvorbis" }), field: "audio_codec"},
		{name: "AAC in webm", out: Output{Kind: KindWebM, Video: VideoSettings{AudioCodec: "aac"}}, field: "audio_codec"},
		{name: "CRF 52 for H.264", out: ok(func(o *Output) { o.Video.CRF = intp(52) }), field: "quality"},
		{name: "CRF 0 for H.264 (lossless)", out: ok(func(o *Output) { o.Video.CRF = intp(0) })},
		{name: "CRF 63 for VP9", out: Output{Kind: KindWebM, Video: VideoSettings{CRF: intp(63)}}},
		{name: "CRF 3 for VP8", out: Output{Kind: KindWebM, Video: VideoSettings{VideoCodec: "libvpx", CRF: intp(3)}}, field: "quality"},
		{name: "SVT-AV1 with CRF and bitrate", out: ok(func(o *Output) { o.Video.VideoCodec, o.Video.CRF, o.Video.Bitrate = "libsvtav1", intp(30), 500 }), field: "bitrate"},
		{name: "framerate 300", out: ok(func(o *Output) { o.Video.FrameRate = Rate{300, 1} }), field: "framerate"},
		{name: "framerate_limit 0.5", out: ok(func(o *Output) { o.Video.FrameRateLimit = Rate{1, 2} }), field: "framerate_limit"},
		{name: "keyframe 20000", out: ok(func(o *Output) { o.Video.KeyframeFrames = 20000 }), field: "keyframe"},
		{name: "keyframe 2 min", out: ok(func(o *Output) { o.Video.KeyframeTime = 2 * time.Minute }), field: "keyframe"},
		{name: "negative start_time", out: ok(func(o *Output) { o.StartTime = dur(-1) }), field: "start_time"},
		{name: "bitrate too high", out: ok(func(o *Output) { o.Video.Bitrate = maxBitrate + 1 }), field: "bitrate"},
		{name: "audio bitrate 4", out: ok(func(o *Output) { o.Video.AudioBitrate = 4 }), field: "audio_bitrate"},
		{name: "sample rate 44000", out: ok(func(o *Output) { o.Video.AudioRate = 44000 }), field: "audio_sample_rate"},
		{name: "mp3 in 5.1", out: ok(func(o *Output) { o.Video.AudioCodec, o.Video.AudioChannels = "libmp3lame", 6 }), field: "audio_channels_number"},
		{name: "AAC in 5.1", out: ok(func(o *Output) { o.Video.AudioChannels = 6 })},
		{name: "pixel format nv12", out: ok(func(o *Output) { o.Video.PixelFormat = "nv12" }), field: "pix_format"},
		{name: "4:2:2 H.264 picks its profile", out: ok(func(o *Output) { o.Video.PixelFormat = "yuv422p" })},
		{name: "main cannot hold 4:2:2", out: ok(func(o *Output) { o.Video.PixelFormat, o.Video.Profile = "yuv422p", "main" }), field: "profile"},
		{name: "profile high", out: ok(func(o *Output) { o.Video.Profile = "high" })},
		{name: "profile for VP9", out: Output{Kind: KindWebM, Video: VideoSettings{Profile: "main"}}, field: "profile"},
		{name: "unknown profile", out: ok(func(o *Output) { o.Video.Profile = "extreme" }), field: "profile"},
		{name: "unknown preset", out: ok(func(o *Output) { o.Video.Preset = "ludicrous" }), field: "video_codec_parameters.preset"},
		{name: "file extension with a slash", out: ok(func(o *Output) { o.Video.FileExtension = "mp4/x" }), field: "file_extension"},
		{name: "file extension m4v", out: ok(func(o *Output) { o.Video.FileExtension = "m4v" })},
	}
	for _, tc := range tests {
		err := Validate(Spec{Source: "https://example.com/v.mp4", Outputs: []Output{{Kind: KindThumbnail}, tc.out}})
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "format[1]."+tc.field {
			t.Errorf("%s: err = %v, want a ValidationError on format[1].%s", tc.name, err, tc.field)
		}
	}
}

func TestMeter(t *testing.T) {
	var reported []float64
	m := newMeter(5, 90, func(p float64) { reported = append(reported, p) })
	images := m.add(3) // 10 grabs of 0.3
	video := m.add(9)
	m.set(video, 0.5)   // 5 + 85*4.5/12
	m.set(video, 0.4)   // ignored: smaller
	m.set(images, 1)    // 5 + 85*7.5/12
	m.set(images, 1)    // ignored: the same
	m.set(video, 0.501) // too small a rise to report
	m.set(video, 1)     // 90
	m.set(7, 1)         // no such part
	want := []float64{5 + 85*4.5/12, 5 + 85*7.5/12, 90}
	if len(reported) != len(want) {
		t.Fatalf("reported %v, want %v", reported, want)
	}
	for i := range want {
		if d := reported[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("report %d = %v, want %v", i, reported[i], want[i])
		}
	}
	if !slices.IsSorted(reported) {
		t.Errorf("percent went down: %v", reported)
	}
}

func TestObjectURLVideo(t *testing.T) {
	tests := []struct {
		dest string
		kind OutputKind
		want string
	}{
		{"s3://h/b/test/test_mini.mp4", KindMP4, "s3://h/b/test/test_mini.mp4"},
		{"s3://h/b/out/video", KindMP4, "s3://h/b/out/video"}, // the key verbatim, no extension added
		{"s3://h/b/out/", KindWebM, "s3://h/b/out/video-2.webm"},
	}
	for _, tc := range tests {
		if got := objectURL(tc.dest, tc.kind, 2, "video-2."+string(tc.kind)); got != tc.want {
			t.Errorf("objectURL(%q, %s) = %q, want %q", tc.dest, tc.kind, got, tc.want)
		}
	}
}
