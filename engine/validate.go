package engine

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// Limits on what one output may ask for.
const (
	maxDimension  = 8192
	maxThumbnails = 10000
	minInterval   = 100 * time.Millisecond
	maxColumns    = 100
)

// Validate checks a spec before it is queued, naming the first field that
// is wrong.
func Validate(s Spec) error {
	if strings.TrimSpace(s.Source) == "" {
		return &ValidationError{Field: "source", Reason: "is required"}
	}
	if err := validateSource(s.Source); err != nil {
		return err
	}
	if len(s.Outputs) == 0 {
		return &ValidationError{Field: "format", Reason: "must list at least one output"}
	}
	if s.CallbackURL != "" {
		if u, err := url.Parse(s.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &ValidationError{Field: "callback_url", Reason: "must be an http:// or https:// URL"}
		}
	}
	for i, o := range s.Outputs {
		if err := validateOutput(o); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				ve.Field = fmt.Sprintf("format[%d].%s", i, ve.Field)
			}
			return err
		}
	}
	return nil
}

func validateSource(src string) error {
	if len(src) > 5 && strings.EqualFold(src[:5], "s3://") {
		// Not url.Parse: secrets often hold an unencoded "/", which
		// ParseS3URL tolerates.
		if _, err := storage.ParseS3URL(src); err != nil {
			return &ValidationError{Field: "source", Reason: err.Error()}
		}
		return nil
	}
	u, err := url.Parse(src)
	if err != nil {
		return &ValidationError{Field: "source", Reason: "is not a valid URL"}
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return &ValidationError{Field: "source", Reason: "has no host"}
		}
	case "s3":
		if _, err := storage.ParseS3URL(src); err != nil {
			return &ValidationError{Field: "source", Reason: err.Error()}
		}
	case "tus":
		if u.Opaque == "" && strings.Trim(u.Path, "/") == "" {
			return &ValidationError{Field: "source", Reason: "must be tus:<file id>, the last part of the upload's URL"}
		}
	case "file":
		if u.Path == "" {
			return &ValidationError{Field: "source", Reason: "must be file:///path/to/video"}
		}
	default:
		return &ValidationError{Field: "source", Reason: fmt.Sprintf("scheme %q is not supported (use http, https, s3, tus or file)", u.Scheme)}
	}
	return nil
}

func validateOutput(o Output) error {
	switch o.Kind {
	case KindThumbnail:
		// frame_number wins over start_time, which wins over time.
		if o.Time != nil {
			if *o.Time < 0 || *o.Time > 1 {
				return &ValidationError{Field: "time", Reason: "must be a fraction of the duration between 0 and 1"}
			}
		}
		if o.FrameNumber != nil && *o.FrameNumber < 0 {
			return &ValidationError{Field: "frame_number", Reason: "must not be negative"}
		}
		if o.StartTime != nil && *o.StartTime < 0 {
			return &ValidationError{Field: "start_time", Reason: "must not be negative"}
		}
		if err := validateCombinations(o); err != nil {
			return err
		}
	case KindThumbnails:
		if o.Interval <= 0 {
			return &ValidationError{Field: "interval", Reason: "is required for thumbnails and must be a positive number of seconds"}
		}
		if o.Interval < minInterval {
			return &ValidationError{Field: "interval", Reason: fmt.Sprintf("must be at least %v", minInterval)}
		}
		if o.Columns < 0 || o.Columns > maxColumns {
			return &ValidationError{Field: "columns", Reason: fmt.Sprintf("must be between 1 and %d", maxColumns)}
		}
		if o.Rows < 0 || o.Rows > maxColumns {
			return &ValidationError{Field: "rows", Reason: fmt.Sprintf("must be between 1 and %d", maxColumns)}
		}
	case KindMP4, KindWebM:
		if err := validateVideo(o); err != nil {
			return err
		}
	case KindMetadata:
	default:
		return &ValidationError{Field: "output", Reason: fmt.Sprintf("%q is not supported", o.Kind)}
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"width", o.Width}, {"height", o.Height}, {"resolution", o.Resolution}} {
		if d.v < 0 || d.v > maxDimension {
			return &ValidationError{Field: d.name, Reason: fmt.Sprintf("must be between 1 and %d", maxDimension)}
		}
	}
	if o.Kind != KindThumbnail && (len(o.Times) > 0 || len(o.Sizes) > 0) {
		field := "time"
		if len(o.Times) == 0 {
			field = "size"
		}
		return &ValidationError{Field: field, Reason: `takes one value except on output "thumbnail"`}
	}
	switch o.ResizeMode {
	case "", ResizeScale, ResizeCrop:
	default:
		return &ValidationError{Field: "resize_mode", Reason: `must be "scale" or "crop"`}
	}
	switch o.Format {
	case "", PNG, JPEG, WebP:
	default:
		return &ValidationError{Field: "image_format", Reason: `must be "png", "jpg" or "webp"`}
	}
	switch o.Accuracy {
	case "", ffmpeg.AccuracyExact, ffmpeg.AccuracyKeyframe:
	default:
		return &ValidationError{Field: "accuracy", Reason: `must be "exact" or "keyframe"`}
	}
	if o.Quality < 0 || o.Quality > 100 {
		return &ValidationError{Field: "quality", Reason: "must be between 1 and 100"}
	}
	for j, d := range o.Destinations {
		if _, err := storage.ParseS3URL(d.URL); err != nil {
			field := "destination.url"
			if len(o.Destinations) > 1 {
				field = fmt.Sprintf("destination[%d].url", j)
			}
			return &ValidationError{Field: field, Reason: err.Error()}
		}
	}
	return nil
}

// validateCombinations checks a thumbnail's lists of times and sizes.
func validateCombinations(o Output) error {
	for i, t := range o.Times {
		if t < 0 || t > 1 {
			return &ValidationError{Field: "time", Reason: "must be fractions of the duration between 0 and 1"}
		}
		if slices.Contains(o.Times[:i], t) {
			return &ValidationError{Field: "time", Reason: fmt.Sprintf("lists %g twice", t)}
		}
	}
	for i, sz := range o.Sizes {
		if sz.W <= 0 || sz.H <= 0 || sz.W > maxDimension || sz.H > maxDimension {
			return &ValidationError{Field: "size", Reason: fmt.Sprintf("sizes must be between 1x1 and %dx%d", maxDimension, maxDimension)}
		}
		if slices.Contains(o.Sizes[:i], sz) {
			return &ValidationError{Field: "size", Reason: fmt.Sprintf("lists %dx%d twice", sz.W, sz.H)}
		}
	}
	if n := max(1, len(o.Times)) * max(1, len(o.Sizes)); n > maxThumbnails {
		return &ValidationError{Field: "time", Reason: fmt.Sprintf("times × sizes make %d images; at most %d", n, maxThumbnails)}
	}
	return nil
}
