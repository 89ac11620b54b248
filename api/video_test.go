package api

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// seedQuery is the request printed on Qencode's "Generating Thumbnails"
// page, verbatim (testdata/qencode-seed-query.json at the repository root).
func seedQuery(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/qencode-seed-query.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeSeedQuery(t *testing.T) {
	spec, err := decodeQuery(seedQuery(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Outputs) != 3 {
		t.Fatalf("%d outputs", len(spec.Outputs))
	}
	o := spec.Outputs[0]
	v := o.Video
	if o.Kind != engine.KindMP4 || o.Width != 360 || o.Height != 240 || o.StartTime == nil || *o.StartTime != 10*time.Second {
		t.Errorf("mp4 output: %+v", o)
	}
	if v.Duration != 20*time.Second || v.FrameRate != (engine.Rate{Num: 30000, Den: 1001}) || v.KeyframeFrames != 25 || v.FileExtension != "mp4" {
		t.Errorf("mp4 settings: %+v", v)
	}
	want := storage.Destination{URL: "s3://nyc3.digitaloceanspaces.com/qencode3/test/test_mini.mp4", Key: "abcde12345", Secret: "abcde12345", Permissions: "public-read"}
	if len(o.Destinations) != 1 || o.Destinations[0] != want {
		t.Errorf("mp4 destination: %+v", o.Destinations)
	}
	if spec.Outputs[1].Kind != engine.KindThumbnail || spec.Outputs[2].UserTag != "50_320x240" {
		t.Errorf("thumbnail outputs: %+v", spec.Outputs[1:])
	}
}

func TestDecodeVideoQuery(t *testing.T) {
	q := func(format string) string {
		return `{"query": {"source": "https://example.com/v.mp4", "format": [` + format + `]}}`
	}
	tests := []struct {
		name  string
		query string
		check func(t *testing.T, o engine.Output)
	}{
		{name: "webm defaults", query: q(`{"output": "webm"}`), check: func(t *testing.T, o engine.Output) {
			if o.Kind != engine.KindWebM || o.Video != (engine.VideoSettings{}) {
				t.Errorf("%+v", o)
			}
		}},
		{name: "codec names, keyframe in seconds, CRF 0, numbers as numbers", query: q(`{"output": "WebM", "video_codec": "VP9", "audio_codec": "opus",
			"keyframe": "2s", "quality": 0, "bitrate": 900, "framerate": 25, "file_extension": ".webm", "audio_mute": "1", "deinterlace": 1,
			"video_codec_parameters": {"preset": "UltraFast"}, "audio_bitrate": "96", "audio_sample_rate": 48000, "audio_channels_number": 1,
			"pix_format": "YUV420P", "framerate_limit": "30000/1001"}`),
			check: func(t *testing.T, o engine.Output) {
				v := o.Video
				if v.VideoCodec != "libvpx-vp9" || v.AudioCodec != "libopus" || v.KeyframeTime != 2*time.Second || v.CRF == nil || *v.CRF != 0 ||
					v.Bitrate != 900 || v.FrameRate != (engine.Rate{Num: 25, Den: 1}) || v.FileExtension != "webm" || !v.AudioMute || !v.Deinterlace ||
					v.Preset != "ultrafast" || v.AudioBitrate != 96 || v.AudioRate != 48000 || v.AudioChannels != 1 || v.PixelFormat != "yuv420p" ||
					v.FrameRateLimit != (engine.Rate{Num: 30000, Den: 1001}) || o.Quality != 0 {
					t.Errorf("%+v", v)
				}
			}},
		{name: "empty values that typed SDKs send are not refused", query: q(`{"output": "mp4", "segment_duration": 0, "stream": [], "logo": null,
			"rotate": "", "subtitles": {}, "two_pass": false, "allow_soft_fail": "0", "hdr_to_sdr": 1}`),
			check: func(t *testing.T, o engine.Output) {
				if o.Kind != engine.KindMP4 {
					t.Errorf("%+v", o)
				}
			}},
		{name: "the query's own flags thumbd accepts", query: `{"query": {"source": "https://example.com/v.mp4", "encoder_version": 2,
			"retry_on_error": 1, "upscale": 1, "use_subtask_callback": 0, "format": [{"output": "mp4"}]}}`,
			check: func(t *testing.T, o engine.Output) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := decodeQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, spec.Outputs[0])
		})
	}
}

func TestRefuseUnsupported(t *testing.T) {
	q := func(format string) string {
		return `{"query": {"source": "https://example.com/v.mp4", "format": [{"output": "thumbnail"}, ` + format + `]}}`
	}
	tests := []struct {
		name  string
		query string
		msg   string
	}{
		{name: "HLS", query: q(`{"output": "advanced_hls", "stream": [{"size": "1920x1080"}]}`),
			msg: `format[1].output: "advanced_hls" is not supported by thumbd; thumbd makes "thumbnail", "thumbnails", "metadata", "mp4" and "webm"`},
		{name: "speech to text", query: q(`{"output": "speech_to_text"}`), msg: `format[1].output: "speech_to_text" is not supported by thumbd`},
		{name: "a misspelt output", query: q(`{"output": "mp5"}`), msg: `format[1].output: "mp5" is not a Qencode output`},
		{name: "a logo", query: q(`{"output": "mp4", "logo": {"source": "https://example.com/logo.png"}}`),
			msg: "format[1].logo: is not supported by thumbd (see docs/outputs.md for what thumbd supports)"},
		{name: "DRM and subtitles together", query: q(`{"output": "mp4", "cenc_drm": {"key": "00"}, "subtitles": {"copy": 1}, "rotate": 90}`),
			msg: "format[1].rotate: is not supported by thumbd; neither is subtitles, cenc_drm"},
		{name: "a logo on a thumbnail", query: q(`{"output": "thumbnail", "logo": [{"source": "x"}]}`), msg: "format[1].logo: is not supported by thumbd"},
		{name: "codec parameters beyond preset", query: q(`{"output": "mp4", "video_codec_parameters": {"preset": "fast", "me_method": "umh", "refs": "4"}}`),
			msg: "format[1].video_codec_parameters.me_method: is not supported by thumbd; neither is video_codec_parameters.refs (thumbd takes only video_codec_parameters.preset)"},
		{name: "per-output callbacks", query: `{"query": {"source": "https://example.com/v.mp4", "use_subtask_callback": 1, "format": [{"output": "mp4"}]}}`,
			msg: "use_subtask_callback: is not supported by thumbd"},
		{name: "LCEVC", query: q(`{"output": "mp4", "video_codec": "lcevc_h264"}`), msg: `format[1].video_codec: "lcevc_h264" (LCEVC) is not supported by thumbd`},
		{name: "an unknown codec", query: q(`{"output": "mp4", "video_codec": "divx"}`), msg: `format[1].video_codec: "divx" is not a video codec thumbd knows`},
		{name: "H.264 in webm", query: q(`{"output": "webm", "video_codec": "libx264"}`), msg: `format[1].video_codec: "libx264" cannot go in webm; use one of libvpx-vp9, libvpx, libsvtav1, libaom-av1`},
		{name: "a bad frame rate", query: q(`{"output": "mp4", "framerate": "fast"}`), msg: `format[1].framerate: "fast" is not a frame rate like 25, 29.97 or 30000/1001`},
		{name: "a bad keyframe", query: q(`{"output": "mp4", "keyframe": "2.5"}`), msg: `format[1].keyframe: must be a whole number of frames (25) or of seconds ("3s"), got "2.5"`},
		{name: "a zero duration", query: q(`{"output": "mp4", "duration": "0"}`), msg: "format[1].duration: must be a positive number of seconds"},
		{name: "a negative start", query: q(`{"output": "mp4", "start_time": -3}`), msg: "format[1].start_time: must not be negative"},
		{name: "CRF out of range", query: q(`{"output": "mp4", "quality": 60}`), msg: "format[1].quality: is a CRF; for libx264 it must be between 0 and 51"},
		{name: "image quality still 1 to 100", query: q(`{"output": "thumbnail", "quality": 0}`), msg: "format[1].quality: must be between 1 and 100"},
		{name: "mute as a word", query: q(`{"output": "mp4", "audio_mute": "yes"}`), msg: "format[1].audio_mute:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeQuery(tc.query)
			if err == nil {
				t.Fatal("accepted")
			}
			e := toError(err)
			if e.Code != codeFieldRequired || !strings.HasPrefix(e.Message, tc.msg) {
				t.Errorf("error %d %q, want 14 %q", e.Code, e.Message, tc.msg)
			}
		})
	}
}
