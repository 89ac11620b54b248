// Package wire renders a task's status the way Qencode reports it: the
// JSON object /v1/status returns for each task (TaskStatus, UnknownStatus)
// and the form a callback posts (CallbackForm), whose status field is that
// same object. Package api serves the first, package callback posts the
// second; both render through here so that they cannot drift apart.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/thumbd/thumbd/engine"
)

// Status is one task's status as Qencode reports it. Arrays are never
// null and error is always an int: typed SDKs (.NET, Java) break otherwise.
type Status struct {
	Status           string        `json:"status"`
	Percent          float64       `json:"percent"`
	Error            int           `json:"error"`
	ErrorDescription *string       `json:"error_description"`
	StatusURL        string        `json:"status_url"`
	Images           []imageJSON   `json:"images"`
	Videos           []videoJSON   `json:"videos"`
	Audios           []any         `json:"audios"`
	Texts            []any         `json:"texts"`
	Warnings         []warningJSON `json:"warnings"`
	Duration         float64       `json:"duration"`
	SourceSize       int64         `json:"source_size"`
	Payload          *string       `json:"payload"`
}

type imageJSON struct {
	Tag     string      `json:"tag"`
	Profile *string     `json:"profile"`
	UserTag *string     `json:"user_tag"`
	URL     string      `json:"url"`
	Storage storageJSON `json:"storage"`
	// thumbd's own fields, so that anyone can check what was delivered.
	Kind          string      `json:"kind"`
	Width         int         `json:"width,omitempty"`
	Height        int         `json:"height,omitempty"`
	Time          *float64    `json:"time,omitempty"`           // the frame's presentation time, seconds from the start of the video
	RequestedTime *float64    `json:"requested_time,omitempty"` // the time asked for
	Keyframe      *bool       `json:"keyframe,omitempty"`
	Strategy      *string     `json:"strategy,omitempty"`     // how the frame was extracted (ffmpeg.Strategy)
	Took          *float64    `json:"took,omitempty"`         // seconds: the ffmpeg run that delivered it
	Frames        []frameJSON `json:"frames,omitempty"`       // a sprite's tiles, in order
	ManifestURL   *string     `json:"manifest_url,omitempty"` // the output's manifest, kept by thumbd
}

type frameJSON struct {
	RequestedTime float64 `json:"requested_time"`
	Time          float64 `json:"time"`
	Keyframe      bool    `json:"keyframe"`
	Strategy      string  `json:"strategy"`
	Took          float64 `json:"took"`
}

type storageJSON struct {
	Type   string  `json:"type"`
	Scheme *string `json:"scheme,omitempty"`
	Host   *string `json:"host"`
	Port   *int    `json:"port"`
	Bucket *string `json:"bucket"`
	Key    string  `json:"key"`
	Format string  `json:"format"`
}

type warningJSON struct {
	Message string  `json:"message"`
	Details string  `json:"details"`
	Tag     *string `json:"tag"`
}

// secs renders a duration in seconds, rounded to the millisecond.
func secs(d interface{ Seconds() float64 }) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// TaskStatus renders a task's snapshot. base is the public URL of this
// server, for status_url and the URLs of the files thumbd keeps.
func TaskStatus(s engine.Snapshot, base string) *Status {
	out := &Status{
		Status:     string(s.State),
		Percent:    math.Round(s.Percent*100) / 100,
		StatusURL:  base + "/v1/status",
		Images:     []imageJSON{},
		Videos:     []videoJSON{},
		Audios:     []any{},
		Texts:      []any{},
		Warnings:   []warningJSON{},
		Duration:   secs(s.Duration),
		SourceSize: s.SourceSize,
		Payload:    strPtr(s.Payload),
	}
	if s.State == engine.StateError {
		out.Error = 1
		out.ErrorDescription = &s.Error
	}
	for _, im := range s.Images {
		j := imageJSON{
			Tag:     fmt.Sprintf("image-%d-%d", im.Output, im.N),
			UserTag: strPtr(im.UserTag),
			URL:     im.Location.URL,
			Kind:    string(im.Kind),
			Width:   im.Width,
			Height:  im.Height,
			Storage: storageJSON{Type: im.Location.Type, Key: im.Location.Key, Format: im.Format,
				Host: strPtr(im.Location.Host), Bucket: strPtr(im.Location.Bucket), Scheme: strPtr(im.Location.Scheme)},
		}
		if im.Location.Port != 0 {
			p := im.Location.Port
			j.Storage.Port = &p
		}
		if im.Location.Type == "local" {
			j.URL = base + "/storage/" + escapePath(im.Location.Key)
		}
		if im.Manifest != "" {
			u := base + "/storage/" + escapePath(im.Manifest)
			j.ManifestURL = &u
		}
		switch {
		case im.Kind == engine.KindImage && len(im.Frames) == 1:
			f := im.Frames[0]
			t, r, k, took := secs(f.Actual), secs(f.Requested), f.Keyframe, secs(f.Took)
			j.Time, j.RequestedTime, j.Keyframe, j.Took = &t, &r, &k, &took
			j.Strategy = strPtr(string(f.Strategy))
		case im.Kind == engine.KindSprite:
			for _, f := range im.Frames {
				j.Frames = append(j.Frames, frameJSON{RequestedTime: secs(f.Requested), Time: secs(f.Actual), Keyframe: f.Keyframe,
					Strategy: string(f.Strategy), Took: secs(f.Took)})
			}
		}
		out.Images = append(out.Images, j)
	}
	for _, v := range s.Videos {
		out.Videos = append(out.Videos, toVideoJSON(v, base))
	}
	for _, w := range s.Warnings {
		out.Warnings = append(out.Warnings, warningJSON{Message: w.Message, Details: w.Details, Tag: strPtr(w.Tag)})
	}
	return out
}

// UnknownStatus is what /v1/status reports for a token it does not know:
// an error status, so that polling clients stop instead of looping.
func UnknownStatus(base string) *Status {
	msg := "Task not found: this task_token is unknown or has expired"
	return &Status{Status: string(engine.StateError), Error: 1, ErrorDescription: &msg, StatusURL: base + "/v1/status",
		Images: []imageJSON{}, Videos: []videoJSON{}, Audios: []any{}, Texts: []any{}, Warnings: []warningJSON{}}
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// videoJSON is one stored video file in a status, as Qencode reports it.
// meta is an object: typed SDK models (Java's SubtaskMeta) break on the
// JSON string that old Qencode examples show.
type videoJSON struct {
	Tag      string        `json:"tag"`
	Profile  *string       `json:"profile"`
	UserTag  *string       `json:"user_tag"`
	URL      string        `json:"url"`
	Storage  storageJSON   `json:"storage"`
	Size     float64       `json:"size"`     // MiB
	Bitrate  int           `json:"bitrate"`  // kbps, of the whole file
	Duration float64       `json:"duration"` // seconds
	Meta     videoMetaJSON `json:"meta"`
}

// videoMetaJSON has the fields of Java's SubtaskMeta, measured on the file
// thumbd made, and thumbd's own codec names.
type videoMetaJSON struct {
	Width            int    `json:"width"`
	Height           int    `json:"height"`
	ResolutionWidth  int    `json:"resolution_width"`
	ResolutionHeight int    `json:"resolution_height"`
	Resolution       int    `json:"resolution"` // the short side
	Framerate        string `json:"framerate"`  // "29.97": SubtaskMeta reads a string
	Bitrate          int    `json:"bitrate"`    // kbps, of the video stream
	DAR              string `json:"dar"`
	SAR              string `json:"sar"`
	VideoCodec       string `json:"video_codec"`
	AudioCodec       string `json:"audio_codec,omitempty"`
}

func toVideoJSON(v engine.Video, base string) videoJSON {
	j := videoJSON{
		Tag:      fmt.Sprintf("video-%d-%d", v.Output, v.N),
		UserTag:  strPtr(v.UserTag),
		URL:      v.Location.URL,
		Storage:  storageJSON{Type: v.Location.Type, Key: v.Location.Key, Format: v.Format, Host: strPtr(v.Location.Host), Bucket: strPtr(v.Location.Bucket), Scheme: strPtr(v.Location.Scheme)},
		Size:     math.Round(float64(v.Size)/(1<<20)*1e6) / 1e6,
		Bitrate:  v.Bitrate,
		Duration: secs(v.Duration),
		Meta: videoMetaJSON{
			Width: v.Meta.Width, Height: v.Meta.Height, ResolutionWidth: v.Meta.Width, ResolutionHeight: v.Meta.Height,
			Resolution: min(v.Meta.Width, v.Meta.Height), Framerate: v.Meta.FrameRate.Decimal(), Bitrate: v.Meta.VideoBitrate,
			DAR: v.Meta.DAR, SAR: v.Meta.SAR, VideoCodec: v.Meta.VideoCodec, AudioCodec: v.Meta.AudioCodec,
		},
	}
	if v.Location.Port != 0 {
		p := v.Location.Port
		j.Storage.Port = &p
	}
	if v.Location.Type == "local" {
		j.URL = base + "/storage/" + escapePath(v.Location.Key)
	}
	return j
}

// Qencode's callback fields.
const (
	cbTaskToken    = "task_token"
	cbEvent        = "event"
	cbCallbackType = "callback_type"
	cbStatus       = "status"
	cbPayload      = "payload"
	cbErrorCode    = "error_code"
	cbErrorMessage = "error_message"
)

// CallbackForm renders a task event as the form fields Qencode posts to a
// callback_url: task_token, event (queued, error or saved), callback_type
// ("task"), status (a JSON string of the same object /v1/status returns for
// the task), payload (the start_encode2 payload, verbatim) and, for an
// error event, error_code and error_message. base is the public URL of this
// server, for status_url and the URLs of kept files.
func CallbackForm(ev engine.Event, base string) (url.Values, error) {
	var st bytes.Buffer
	enc := json.NewEncoder(&st)
	enc.SetEscapeHTML(false) // as /v1/status writes it
	if err := enc.Encode(TaskStatus(ev.Snap, base)); err != nil {
		return nil, err
	}
	v := url.Values{}
	v.Set(cbTaskToken, ev.Token)
	v.Set(cbEvent, string(ev.Kind))
	v.Set(cbCallbackType, "task")
	v.Set(cbStatus, strings.TrimSuffix(st.String(), "\n"))
	v.Set(cbPayload, ev.Spec.Payload)
	if ev.Kind == engine.EventError {
		v.Set(cbErrorCode, strconv.Itoa(errorCodeInternal))
		v.Set(cbErrorMessage, ev.Snap.Error)
	}
	return v, nil
}

// errorCodeInternal is the error_code of an error event: Qencode's code 1,
// an internal error, as api's error list has it.
const errorCodeInternal = 1
