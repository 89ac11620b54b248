// Package engine runs thumbnail and video tasks: it owns task tokens and
// their lifecycle, the work queue, what each output asks for (sizes, image
// formats, sprite sheets, WebVTT, video encodes), and hands finished files
// to storage. Package ffmpeg probes sources and extracts the frames.
//
// The engine knows nothing of HTTP or of Qencode's wire format: package api
// turns requests into a Spec and a Snapshot into Qencode's status JSON.
package engine

import (
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// OutputKind says what an output produces.
type OutputKind string

// The output kinds the engine produces.
const (
	KindThumbnail  OutputKind = "thumbnail"  // one image
	KindThumbnails OutputKind = "thumbnails" // an image every interval, plus a WebVTT file
	KindMP4        OutputKind = "mp4"        // a video file: H.264 and AAC unless told otherwise
	KindWebM       OutputKind = "webm"       // a video file: VP9 and Opus unless told otherwise
	KindMetadata   OutputKind = "metadata"   // ffprobe's description of the source, as JSON
)

// ImageFormat is the encoding of an output image.
type ImageFormat string

// The image formats the engine writes.
const (
	PNG  ImageFormat = "png"
	JPEG ImageFormat = "jpg"
	WebP ImageFormat = "webp"
)

// ContentType is the MIME type of the format.
func (f ImageFormat) ContentType() string {
	switch f {
	case JPEG:
		return "image/jpeg"
	case WebP:
		return "image/webp"
	default:
		return "image/png"
	}
}

// ResizeMode says how an image is fitted into a requested box.
type ResizeMode string

// The resize modes.
const (
	// ResizeScale fits the whole frame inside the box, keeping its aspect
	// ratio, and pads the rest of the box.
	ResizeScale ResizeMode = "scale"
	// ResizeCrop fills the box, keeping the aspect ratio, and crops the
	// centre.
	ResizeCrop ResizeMode = "crop"
)

// Spec is a validated request to run one task.
type Spec struct {
	Source      string
	Outputs     []Output
	CallbackURL string
	Payload     string
	// Query is the query as the client sent it, kept to be shown (the
	// console); the engine does not read it.
	Query string `json:",omitempty"`
	// Warnings are what the request got wrong without failing (a field
	// that is not Qencode's); they are the task's first warnings.
	Warnings []Warning
}

// Size is a box asked for, in pixels.
type Size struct{ W, H int }

// Output is one entry of a task's outputs.
type Output struct {
	Kind OutputKind

	// Where a single thumbnail is taken; at most one is set. With none,
	// the thumbnail is taken at the start of the video. StartTime is also
	// where a video output's clip begins.
	Time        *float64       // fraction 0..1 of the video duration
	FrameNumber *int64         // 0-based frame index
	StartTime   *time.Duration // offset from the start of the video

	// Several times and sizes of a thumbnail: one image for each
	// combination of a time of Times and a size of Sizes, times first.
	// Times, when set, replace Time; Sizes replace Width, Height and
	// Resolution. Each has two or more entries, or none.
	Times []float64 // fractions 0..1 of the video duration
	Sizes []Size

	// Interval between thumbnails of a series.
	Interval time.Duration

	// Size. Zero means "not given".
	Width, Height int
	Resolution    int // the short side
	ResizeMode    ResizeMode

	Format  ImageFormat
	Quality int // 1..100, 0 = default; jpg and webp only

	Sprite  bool
	Columns int // tiles per sprite row; 0 = default
	Rows    int // rows per sprite sheet; 0 = default (thumbd's own)

	Video VideoSettings // mp4 and webm outputs only
	// Accuracy of the frames (thumbd's own); "" takes the engine's
	// default (Config.Accuracy).
	Accuracy ffmpeg.Accuracy

	UserTag      string
	Destinations []storage.Destination // empty: thumbd keeps the files
	// Manifest uploads the output's manifest to its destinations too
	// (thumbd's own); Config.UploadManifests does it for every output.
	// thumbd keeps every manifest either way.
	Manifest bool
}

// Defaults the engine applies where a spec leaves a field zero.
const (
	defaultColumns = 10
	defaultRows    = 10
)
