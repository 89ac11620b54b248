package api

import (
	"fmt"
	"math"
	"strings"

	"github.com/thumbd/thumbd/engine"
)

// The reply of every method carries "error": 0 on success.
type tokenReply struct {
	Error  int    `json:"error"`
	Token  string `json:"token"`
	Expire string `json:"expire"`
}

type createTaskReply struct {
	Error     int    `json:"error"`
	TaskToken string `json:"task_token"`
	UploadURL string `json:"upload_url"`
}

type startReply struct {
	Error     int    `json:"error"`
	StatusURL string `json:"status_url"`
}

type statusReply struct {
	Error    int                    `json:"error"`
	Statuses map[string]*statusJSON `json:"statuses"`
}

type errorReply struct {
	Error   int    `json:"error"`
	Message string `json:"message"`
}

// statusJSON is one task's status as Qencode reports it. Arrays are never
// null and error is always an int: typed SDKs (.NET, Java) break otherwise.
type statusJSON struct {
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
	Strategy      *string     `json:"strategy,omitempty"` // how the frame was extracted (ffmpeg.Strategy)
	Took          *float64    `json:"took,omitempty"`     // seconds: the ffmpeg run that delivered it
	Frames        []frameJSON `json:"frames,omitempty"`   // a sprite's tiles, in order
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

// toStatusJSON renders a snapshot. base is the public URL of this server.
func toStatusJSON(token string, s engine.Snapshot, base string) *statusJSON {
	out := &statusJSON{
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

// unknownStatus is what /v1/status reports for a token it does not know:
// an error status, so that polling clients stop instead of looping.
func unknownStatus(base string) *statusJSON {
	msg := "Task not found: this task_token is unknown or has expired"
	return &statusJSON{Status: string(engine.StateError), Error: 1, ErrorDescription: &msg, StatusURL: base + "/v1/status",
		Images: []imageJSON{}, Videos: []videoJSON{}, Audios: []any{}, Texts: []any{}, Warnings: []warningJSON{}}
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = pathEscape(s)
	}
	return strings.Join(parts, "/")
}
