package engine

import (
	"encoding/json"
	"math"
	"os"
	"path"
	"strings"
	"time"
)

// manifest is thumbd's own record of an output, stored as manifest.json
// beside its images: for every frame, the time asked for, the presentation
// time of the frame delivered, whether it is a keyframe, how it was
// extracted and how long that took. It is what makes the accuracy of the
// images checkable without trusting thumbd.
type manifest struct {
	Version  int             `json:"version"`
	Output   int             `json:"output"` // index in the query's format list
	Kind     string          `json:"kind"`   // thumbnail or thumbnails
	UserTag  string          `json:"user_tag,omitempty"`
	Accuracy string          `json:"accuracy"`           // exact or keyframe
	Took     float64         `json:"took"`               // seconds from planning to the last frame of this output
	Source   manifestSource  `json:"source"`             // what the planner knew of the source
	Frames   []manifestFrame `json:"frames"`             // in the order of the images (and of the tiles of each sheet)
	Interval float64         `json:"interval,omitempty"` // seconds, for thumbnails
}

// manifestSource describes the source as the planner saw it.
type manifestSource struct {
	Duration  float64 `json:"duration"`   // seconds, of the video stream
	FrameRate float64 `json:"frame_rate"` // nominal frames per second
	Frames    int     `json:"frames,omitempty"`
	Keyframes int     `json:"keyframes,omitempty"`
	Indexed   bool    `json:"indexed"` // false: the packets could not be read, every frame was an input seek
}

// manifestFrame is one frame of an output.
type manifestFrame struct {
	File          string  `json:"file"`           // image name, relative to the manifest
	XYWH          string  `json:"xywh,omitempty"` // the tile within a sprite sheet
	RequestedTime float64 `json:"requested_time"` // seconds from the start of the video
	Time          float64 `json:"time"`           // presentation time of the frame delivered, seconds from the start of the video
	Keyframe      bool    `json:"keyframe"`
	Strategy      string  `json:"strategy"`
	Took          float64 `json:"took"` // seconds: wall time of the ffmpeg run that delivered it, shared by the frames of that run
}

// manifestName is the stored name of an output's manifest: manifest.json in
// a series' folder, or the image's name with .manifest.json for a single
// thumbnail.
func manifestName(kind OutputKind, image string) string {
	if kind == KindThumbnails {
		return "manifest.json"
	}
	return strings.TrimSuffix(image, path.Ext(image)) + ".manifest.json"
}

// manifestURL is where an output's manifest goes for a destination URL:
// beside the image of a thumbnail, in the folder of a series.
func manifestURL(dest string, kind OutputKind, index int, image string) string {
	if kind == KindThumbnail {
		obj := objectURL(dest, kind, index, image)
		return strings.TrimSuffix(obj, path.Ext(obj)) + ".manifest.json"
	}
	return objectURL(dest, kind, index, "manifest.json")
}

func writeManifest(file string, m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// sec renders a duration in seconds, to the microsecond.
func sec(d time.Duration) float64 { return math.Round(d.Seconds()*1e6) / 1e6 }
