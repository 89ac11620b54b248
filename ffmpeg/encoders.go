package ffmpeg

import (
	"context"
	"strconv"
	"strings"
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

// Encoder asks ffmpeg about one of its encoders. It runs ffmpeg each time:
// callers that ask often keep the answers.
func (r Runner) Encoder(ctx context.Context, name string) (EncoderInfo, error) {
	out, stderr, err := r.run(ctx, r.FFmpeg, []string{"-hide_banner", "-h", "encoder=" + name})
	if err != nil {
		return EncoderInfo{}, err
	}
	return ParseEncoderHelp(name, append(out, stderr...)), nil
}
