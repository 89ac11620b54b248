package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/thumbd/thumbd/ffmpeg"
)

// encoders remembers what the engine's ffmpeg said of each encoder, so that
// ffmpeg is asked once per encoder.
type encoders struct {
	runner ffmpeg.Runner
	known  sync.Map // name → ffmpeg.EncoderInfo
}

// get asks ffmpeg about an encoder, once.
func (c *encoders) get(ctx context.Context, name string) (ffmpeg.EncoderInfo, error) {
	if v, ok := c.known.Load(name); ok {
		return v.(ffmpeg.EncoderInfo), nil
	}
	info, err := c.runner.Encoder(ctx, name)
	if err != nil {
		return ffmpeg.EncoderInfo{}, err
	}
	c.known.Store(name, info)
	return info, nil
}

// checkEncoders refuses a spec whose video outputs need an encoder, a pixel
// format or a sample rate that this server's ffmpeg lacks. libfdk_aac is
// let through: it is Qencode's default and is replaced by ffmpeg's own AAC
// encoder when missing. When ffmpeg cannot be asked, nothing is refused
// here; the task will fail with ffmpeg's own error.
func (e *Engine) checkEncoders(ctx context.Context, spec Spec) error {
	for i, o := range spec.Outputs {
		if !o.Kind.Video() {
			continue
		}
		v := o.Video.resolved(o.Kind)
		vi, err := e.encoders.get(ctx, v.VideoCodec)
		if err != nil {
			return nil
		}
		field := func(f string) string { return fmt.Sprintf("format[%d].%s", i, f) }
		if !vi.Found {
			return &ValidationError{Field: field("video_codec"), Reason: fmt.Sprintf("%s is not available in this server's ffmpeg", v.VideoCodec)}
		}
		if len(vi.PixFmts) > 0 && !slices.Contains(vi.PixFmts, v.PixelFormat) {
			return &ValidationError{Field: field("pix_format"), Reason: fmt.Sprintf("%s cannot encode %s pictures", v.VideoCodec, v.PixelFormat)}
		}
		if v.AudioCodec == "libfdk_aac" {
			continue
		}
		ai, err := e.encoders.get(ctx, v.AudioCodec)
		if err != nil {
			return nil
		}
		if !ai.Found {
			return &ValidationError{Field: field("audio_codec"), Reason: fmt.Sprintf("%s is not available in this server's ffmpeg", v.AudioCodec)}
		}
		if len(ai.SampleRates) > 0 && !slices.Contains(ai.SampleRates, v.AudioRate) {
			rates := make([]string, len(ai.SampleRates))
			for k, r := range ai.SampleRates {
				rates[k] = strconv.Itoa(r)
			}
			return &ValidationError{Field: field("audio_sample_rate"), Reason: fmt.Sprintf("%s takes only %s", v.AudioCodec, strings.Join(rates, ", "))}
		}
	}
	return nil
}

// substituteCodecs replaces encoders that Qencode offers but this ffmpeg
// lacks with their nearest equivalent, and says so in a warning.
func (e *Engine) substituteCodecs(ctx context.Context, idx int, o *Output) *Warning {
	if o.Video.AudioCodec != "libfdk_aac" {
		return nil
	}
	if info, err := e.encoders.get(ctx, "libfdk_aac"); err == nil && info.Found {
		return nil
	}
	o.Video.AudioCodec = "aac"
	return &Warning{
		Message: "Audio codec replaced",
		Details: "libfdk_aac is not available on this server; the audio was encoded with ffmpeg's native AAC encoder",
		Tag:     fmt.Sprintf("video-%d-0", idx),
	}
}
