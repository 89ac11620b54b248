package engine

import (
	"slices"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// State is where a task is in its life.
type State string

// The states of a task, in the order a task passes through them.
const (
	StateCreated     State = "created" // has a token, not started
	StateQueued      State = "queued"
	StateDownloading State = "downloading" // probing the source
	StateEncoding    State = "encoding"    // making images and videos
	StateSaving      State = "saving"      // storing them
	StateCompleted   State = "completed"
	StateError       State = "error"
)

// Done reports whether the state is final.
func (s State) Done() bool { return s == StateCompleted || s == StateError }

// Snapshot is the state of a task at one moment.
type Snapshot struct {
	State      State
	Percent    float64 // 0..100, never decreases
	Error      string  // what went wrong, for StateError
	Images     []Image
	Videos     []Video
	Warnings   []Warning
	Duration   time.Duration // of the source's video stream; 0 until probed
	SourceSize int64         // bytes; 0 until known
	Payload    string
}

// ImageKind says what a stored file is.
type ImageKind string

// The kinds of stored file.
const (
	KindImage  ImageKind = "image"  // one frame
	KindSprite ImageKind = "sprite" // a sheet of tiles
	KindVTT    ImageKind = "vtt"    // a WebVTT file
	// KindManifest is an output's manifest.json: what was asked for, what
	// was delivered and how.
	KindManifest ImageKind = "manifest"
)

// Image is one stored file of a task.
type Image struct {
	Output   int // index of the output in the spec
	N        int // sequence number within the output
	Kind     ImageKind
	Format   string // png, jpg, webp or vtt
	UserTag  string
	Location storage.Location
	Width    int // pixels; 0 for a VTT
	Height   int
	Frames   []Frame // the frames it shows: one for an image, one per tile for a sprite
	// Manifest is the name thumbd keeps its output's manifest under
	// (FileStore); "" when none is kept.
	Manifest string
}

// Frame is one frame taken from the source.
type Frame struct {
	Requested time.Duration // time asked for, from the start of the video
	Actual    time.Duration // presentation time of the frame delivered, from the start of the video
	Keyframe  bool
	Strategy  ffmpeg.Strategy // how it was extracted
	Took      time.Duration   // wall time of the ffmpeg run that delivered it, shared by the frames of that run
}

// Warning is a problem that did not fail the task.
type Warning struct {
	Message string
	Details string
	Tag     string
}

func (s Snapshot) clone() Snapshot {
	c := s
	c.Images = slices.Clone(s.Images)
	for i := range c.Images {
		c.Images[i].Frames = slices.Clone(c.Images[i].Frames)
	}
	c.Videos = slices.Clone(s.Videos)
	c.Warnings = slices.Clone(s.Warnings)
	return c
}
