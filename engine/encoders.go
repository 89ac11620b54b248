package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// EncoderInfo is what ffmpeg says of one of its encoders.
type EncoderInfo struct {
	Name        string
	Found       bool
	PixFmts     []string // empty: not listed
	SampleRates []int    // empty: any
}

// ParseEncoderHelp reads the output of `ffmpeg -h encoder=NAME`.
func ParseEncoderHelp(name string, out []byte) EncoderInfo {
	info := EncoderInfo{Name: name}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Encoder "+name+" "):
			info.Found = true
		case strings.HasPrefix(line, "Supported pixel formats:"):
			info.PixFmts = strings.Fields(strings.TrimPrefix(line, "Supported pixel formats:"))
		case strings.HasPrefix(line, "Supported sample rates:"):
			for _, f := range strings.Fields(strings.TrimPrefix(line, "Supported sample rates:")) {
				if n, err := strconv.Atoi(f); err == nil {
					info.SampleRates = append(info.SampleRates, n)
				}
			}
		}
	}
	return info
}

// encoderCache holds what each ffmpeg binary said of each encoder, so that
// ffmpeg is asked once per encoder per process.
var encoderCache sync.Map // "ffmpeg\x00name" → EncoderInfo

// Encoder asks ffmpeg about one of its encoders.
func (r Runner) Encoder(ctx context.Context, name string) (EncoderInfo, error) {
	key := r.FFmpeg + "\x00" + name
	if v, ok := encoderCache.Load(key); ok {
		return v.(EncoderInfo), nil
	}
	out, stderr, err := r.run(ctx, r.FFmpeg, []string{"-hide_banner", "-h", "encoder=" + name})
	if err != nil {
		return EncoderInfo{}, err
	}
	info := ParseEncoderHelp(name, append(out, stderr...))
	encoderCache.Store(key, info)
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
		vi, err := e.cfg.Runner.Encoder(ctx, v.VideoCodec)
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
		ai, err := e.cfg.Runner.Encoder(ctx, v.AudioCodec)
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
	if info, err := e.cfg.Runner.Encoder(ctx, "libfdk_aac"); err == nil && info.Found {
		return nil
	}
	o.Video.AudioCodec = "aac"
	return &Warning{
		Message: "Audio codec replaced",
		Details: "libfdk_aac is not available on this server; the audio was encoded with ffmpeg's native AAC encoder",
		Tag:     fmt.Sprintf("video-%d-0", idx),
	}
}
