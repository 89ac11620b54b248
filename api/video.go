package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// wireVideo is the part of a format entry that only mp4 and webm outputs
// read.
type wireVideo struct {
	Duration, Bitrate, Quality, AudioBitrate, AudioSampleRate, AudioChannels number
	AudioMute, Deinterlace, HDRToSDR                                         number
	Framerate, FramerateLimit, Keyframe                                      text
	VideoCodec, AudioCodec, FileExtension, PixFormat, Profile                text
	CodecParameters                                                          json.RawMessage
}

func (f *wireVideo) fields() map[string]any {
	return map[string]any{
		"duration": &f.Duration, "bitrate": &f.Bitrate, "quality": &f.Quality, "audio_bitrate": &f.AudioBitrate,
		"audio_sample_rate": &f.AudioSampleRate, "audio_channels_number": &f.AudioChannels, "audio_mute": &f.AudioMute,
		"deinterlace": &f.Deinterlace, "hdr_to_sdr": &f.HDRToSDR, "framerate": &f.Framerate,
		"framerate_limit": &f.FramerateLimit, "keyframe": &f.Keyframe, "video_codec": &f.VideoCodec,
		"audio_codec": &f.AudioCodec, "file_extension": &f.FileExtension, "pix_format": &f.PixFormat,
		"profile": &f.Profile, "video_codec_parameters": &f.CodecParameters,
	}
}

// videoCodecNames maps the video_codec values Qencode documents, and common
// names for them, to ffmpeg encoders.
var videoCodecNames = map[string]string{
	"libx264": "libx264", "x264": "libx264", "h264": "libx264", "avc": "libx264",
	"libx265": "libx265", "x265": "libx265", "h265": "libx265", "hevc": "libx265",
	"libvpx": "libvpx", "vp8": "libvpx",
	"libvpx-vp9": "libvpx-vp9", "vp9": "libvpx-vp9",
	"libsvtav1": "libsvtav1", "av1": "libsvtav1", "svt-av1": "libsvtav1",
	"libaom-av1": "libaom-av1",
}

// audioCodecNames does the same for audio_codec.
var audioCodecNames = map[string]string{
	"aac": "aac", "libfdk_aac": "libfdk_aac",
	"mp3": "libmp3lame", "libmp3lame": "libmp3lame",
	"libopus": "libopus", "opus": "libopus",
	"libvorbis": "libvorbis", "vorbis": "libvorbis",
}

// decodeVideo reads the fields of an mp4 or webm output into o.Video.
func decodeVideo(raw json.RawMessage, o *engine.Output) error {
	var f wireVideo
	if err := decodeObject(raw, f.fields()); err != nil {
		return err
	}
	v := &o.Video
	if f.Duration.set {
		if f.Duration.v <= 0 {
			return &engine.ValidationError{Field: "duration", Reason: "must be a positive number of seconds"}
		}
		v.Duration = time.Duration(f.Duration.v * float64(time.Second))
	}
	if o.StartTime != nil && *o.StartTime < 0 {
		return &engine.ValidationError{Field: "start_time", Reason: "must not be negative"}
	}
	ints := []struct {
		n    number
		name string
		dst  *int
	}{
		{f.Bitrate, "bitrate", &v.Bitrate}, {f.AudioBitrate, "audio_bitrate", &v.AudioBitrate},
		{f.AudioSampleRate, "audio_sample_rate", &v.AudioRate}, {f.AudioChannels, "audio_channels_number", &v.AudioChannels},
	}
	for _, x := range ints {
		n, err := x.n.integer(x.name)
		if err != nil {
			return err
		}
		if x.n.set && n <= 0 {
			return &engine.ValidationError{Field: x.name, Reason: "must be a positive whole number"}
		}
		*x.dst = n
	}
	if f.Quality.set {
		q, err := f.Quality.integer("quality")
		if err != nil {
			return err
		}
		if q < 0 {
			return &engine.ValidationError{Field: "quality", Reason: "is a CRF and must not be negative"}
		}
		v.CRF = &q
	}
	flags := []struct {
		n    number
		name string
		dst  *bool
	}{{f.AudioMute, "audio_mute", &v.AudioMute}, {f.Deinterlace, "deinterlace", &v.Deinterlace}, {f.HDRToSDR, "hdr_to_sdr", nil}}
	for _, x := range flags {
		if x.n.set && x.n.v != 0 && x.n.v != 1 {
			return &engine.ValidationError{Field: x.name, Reason: "must be 0 or 1"}
		}
		if x.dst != nil {
			*x.dst = x.n.v == 1
		}
	}
	for _, r := range []struct {
		s    text
		name string
		dst  *engine.Rate
	}{{f.Framerate, "framerate", &v.FrameRate}, {f.FramerateLimit, "framerate_limit", &v.FrameRateLimit}} {
		if s := strings.TrimSpace(string(r.s)); s != "" {
			rate, err := engine.ParseRate(s)
			if err != nil {
				return &engine.ValidationError{Field: r.name, Reason: err.Error()}
			}
			*r.dst = rate
		}
	}
	if k := strings.ToLower(strings.TrimSpace(string(f.Keyframe))); k != "" {
		if secs, ok := strings.CutSuffix(k, "s"); ok {
			s, err := strconv.ParseFloat(strings.TrimSpace(secs), 64)
			if err != nil || math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
				return &engine.ValidationError{Field: "keyframe", Reason: fmt.Sprintf("must be a number of frames (25) or of seconds (\"3s\"), got %q", k)}
			}
			v.KeyframeTime = time.Duration(s * float64(time.Second))
		} else {
			n, err := strconv.ParseFloat(k, 64)
			if err != nil || n != math.Trunc(n) || n < 1 || n > 1<<31 {
				return &engine.ValidationError{Field: "keyframe", Reason: fmt.Sprintf("must be a whole number of frames (25) or of seconds (\"3s\"), got %q", k)}
			}
			v.KeyframeFrames = int(n)
		}
	}
	if c := strings.ToLower(strings.TrimSpace(string(f.VideoCodec))); c != "" {
		enc, ok := videoCodecNames[c]
		switch {
		case strings.HasPrefix(c, "lcevc"):
			return &engine.ValidationError{Field: "video_codec", Reason: fmt.Sprintf("%q (LCEVC) is not supported by thumbd", c)}
		case !ok:
			return &engine.ValidationError{Field: "video_codec", Reason: fmt.Sprintf("%q is not a video codec thumbd knows; use libx264, libx265, libvpx, libvpx-vp9, libsvtav1 or libaom-av1", c)}
		}
		v.VideoCodec = enc
	}
	if c := strings.ToLower(strings.TrimSpace(string(f.AudioCodec))); c != "" {
		enc, ok := audioCodecNames[c]
		if !ok {
			return &engine.ValidationError{Field: "audio_codec", Reason: fmt.Sprintf("%q is not an audio codec thumbd knows; use aac, libfdk_aac, mp3, libopus or libvorbis", c)}
		}
		v.AudioCodec = enc
	}
	v.FileExtension = strings.TrimPrefix(strings.TrimSpace(string(f.FileExtension)), ".")
	v.PixelFormat = strings.ToLower(strings.TrimSpace(string(f.PixFormat)))
	v.Profile = strings.ToLower(strings.TrimSpace(string(f.Profile)))
	return decodeCodecParameters(f.CodecParameters, v)
}

// decodeCodecParameters reads video_codec_parameters, of which thumbd
// takes only preset; any other parameter set is refused by name.
func decodeCodecParameters(raw json.RawMessage, v *engine.VideoSettings) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return &engine.ValidationError{Field: "video_codec_parameters", Reason: "must be a JSON object"}
	}
	var refused []string
	for k, val := range m {
		if k == "preset" {
			var p text
			if err := json.Unmarshal(val, &p); err != nil {
				return &engine.ValidationError{Field: "video_codec_parameters.preset", Reason: "must be a string"}
			}
			v.Preset = strings.ToLower(strings.TrimSpace(string(p)))
			continue
		}
		if isSet(val) {
			refused = append(refused, "video_codec_parameters."+k)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return refusal(refused, "thumbd takes only video_codec_parameters.preset")
	}
	return nil
}

// unsupportedOutputs are Qencode's outputs that thumbd does not make.
var unsupportedOutputs = []string{"advanced_hls", "advanced_dash", "webm_dash", "repack", "mp3", "hls_audio",
	"flac", "gif", "speech_to_text", "vmaf"}

// madeOutputs says which outputs thumbd makes.
const madeOutputs = `thumbd makes "thumbnail", "thumbnails", "metadata", "mp4" and "webm"`

// unsupportedFields are the format fields Qencode documents that thumbd
// does not implement. A query that sets one (to anything but null, "", 0,
// false, [] or {}) is refused at start, naming it, rather than run without
// it.
var unsupportedFields = []string{
	"rotate", "aspect_ratio", "two_pass", "packager_version", "tag_video", "audio_pan",
	"stream", "segment_duration", "playlist_name", "i_frames_only", "fmp4", "create_m3u8_playlist",
	"separate_audio", "single_folder", "subtitles", "logo",
	"color_space", "color_range", "color_trc", "color_primaries",
	"optimize_bitrate", "min_crf", "max_crf", "adjust_crf", "incremental_tag",
	"cenc_drm", "fps_drm", "encryption", "drm",
	"audio_copy", "video_copy", "subtitles_copy", "metadata_copy",
	"transcript", "transcript_name", "json", "json_name", "srt", "srt_name", "vtt", "vtt_name",
	"mode", "language", "translate_languages",
	"allow_soft_fail", "vmaf_model", "distorted", "n_subsample", "shortest",
	"keep_360_metadata", "inject_360_metadata",
}

// unsupportedQueryFields are the top-level query fields thumbd refuses
// when set: per-output callbacks and ABR playlist refreshes.
var unsupportedQueryFields = []string{"use_subtask_callback", "refresh_playlist"}

// outputError explains why an output value is refused.
func outputError(kind string) error {
	made := madeOutputs
	if slices.Contains(unsupportedOutputs, kind) {
		return &engine.ValidationError{Field: "output", Reason: fmt.Sprintf("%q is not supported by thumbd; %s", kind, made)}
	}
	return &engine.ValidationError{Field: "output", Reason: fmt.Sprintf("%q is not a Qencode output; %s", kind, made)}
}

// refuseUnsupported returns a ValidationError naming every field of raw
// (a JSON object) that is in names and set.
func refuseUnsupported(raw json.RawMessage, names []string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil // decodeObject reports it
	}
	var refused []string
	for _, n := range names {
		if v, ok := m[n]; ok && isSet(v) {
			refused = append(refused, n)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return refusal(refused, "see docs/outputs.md for what thumbd supports")
}

func refusal(names []string, hint string) error {
	reason := "is not supported by thumbd"
	if len(names) > 1 {
		reason += "; neither is " + strings.Join(names[1:], ", ")
	}
	return &engine.ValidationError{Field: names[0], Reason: reason + " (" + hint + ")"}
}

// isSet reports whether a JSON value asks for something: anything but
// null, "", 0, "0", false, [] and {}. SDKs with typed models send such
// empty values for every field they know.
func isSet(v json.RawMessage) bool {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return true
	}
	switch x := x.(type) {
	case nil:
		return false
	case string:
		s := strings.TrimSpace(x)
		return s != "" && s != "0"
	case float64:
		return x != 0
	case bool:
		return x
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
