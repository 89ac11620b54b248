package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/thumbd/thumbd/engine"
)

// queryFields are the fields of Qencode's query object (start_encode2's
// {"query": {...}}), whether thumbd implements them or not: Qencode's API
// reference (its schema), and the fields its official SDKs send.
var queryFields = []string{
	"source", "stitch", "format", "callback_url", "encoder_version",
	"use_subtask_callback", "refresh_playlist", "retry_on_error", "upscale",
}

// formatFields are the fields of one entry of query.format that Qencode
// documents (its API reference's schema, its thumbnails tutorial) or that
// its official SDKs' Format classes send, whether thumbd implements them or
// not, and thumbd's own (ownFormatFields). A field thumbd does not implement
// is refused by name (unsupportedFields); one that is in neither table gets
// a warning (unknownFields).
var formatFields = []string{
	// what every output takes
	"output", "destination", "file_extension", "tag", "user_tag", "allow_soft_fail",
	// images and video
	"start_time", "duration", "size", "width", "height", "resolution", "resize_mode", "rotate", "aspect_ratio",
	"quality", "logo",
	// thumbnails
	"time", "frame_number", "interval", "image_format", "sprite", "columns",
	// video and audio
	"bitrate", "framerate", "framerate_limit", "keyframe", "video_codec", "video_codec_parameters", "pix_format",
	"profile", "two_pass", "deinterlace", "hdr_to_sdr", "optimize_bitrate", "min_crf", "max_crf", "adjust_crf",
	"color_space", "color_range", "color_trc", "color_primaries", "keep_360_metadata", "inject_360_metadata",
	"audio_codec", "audio_bitrate", "audio_sample_rate", "audio_channels_number", "audio_mute", "audio_pan",
	"audio_copy", "video_copy", "subtitles_copy", "metadata_copy", "subtitles", "tag_video",
	// streaming
	"stream", "segment_duration", "playlist_name", "packager_version", "i_frames_only", "fmp4",
	"create_m3u8_playlist", "separate_audio", "single_folder", "incremental_tag",
	"cenc_drm", "fps_drm", "drm", "encryption",
	// metadata, speech_to_text, vmaf
	"metadata_version",
	"transcript", "transcript_name", "json", "json_name", "srt", "srt_name", "vtt", "vtt_name",
	"mode", "language", "translate_languages",
	"vmaf_model", "distorted", "n_subsample", "shortest",
}

// ownFormatFields are thumbd's own format fields.
var ownFormatFields = []string{"accuracy", "rows", "manifest"}

// destinationFields are the fields of a destination object.
var destinationFields = []string{
	"url", "key", "secret", "permissions", "storage_class", "cache_control",
	"is_passive", "use_tls", "tcp_port", "udp_port",
}

// unknownFields returns a warning for every key of raw (a JSON object)
// that is not in known, naming it as where.key and the nearest known field
// when one is close enough to be a typo.
func unknownFields(raw json.RawMessage, where string, known ...[]string) []engine.Warning {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	var keys []string
	for k := range m {
		if !slices.ContainsFunc(known, func(list []string) bool { return slices.Contains(list, k) }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var ws []engine.Warning
	for _, k := range keys {
		name := k
		if where != "" {
			name = where + "." + k
		}
		details := fmt.Sprintf("%s is not a Qencode field and was ignored", name)
		if near := nearest(k, known...); near != "" {
			details += fmt.Sprintf("; did you mean %q?", near)
		}
		ws = append(ws, engine.Warning{Message: "Unknown field", Details: details})
	}
	return ws
}

// nearest is the known field closest to name by edit distance (a swap of
// two neighbouring letters counts as one edit), when it is close enough to
// be a typo: one edit for names of up to four letters, two for longer ones.
// Ties go to the name first in alphabetical order.
func nearest(name string, known ...[]string) string {
	lower := strings.ToLower(name)
	limit := 2
	if len(lower) <= 4 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, list := range known {
		for _, k := range list {
			d := editDistance(lower, k)
			if d < bestD || d == bestD && k < best {
				best, bestD = k, d
			}
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
