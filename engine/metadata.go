package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thumbd/thumbd/ffmpeg"
)

// onlyMetadata reports whether every output of spec is a metadata output.
func onlyMetadata(spec Spec) bool {
	for _, o := range spec.Outputs {
		if o.Kind != KindMetadata {
			return false
		}
	}
	return true
}

// describe makes a metadata output: ffprobe's JSON description of the
// source (its container and every stream), read through the same opened
// source as the other outputs, with the source named as it may be shown.
// Its status entry is a videos entry whose size is the JSON file's and
// whose duration, bitrate and meta describe the source (f).
func (e *Engine) describe(ctx context.Context, idx int, o Output, source OpenSource, dir string) (p *outputPlan, f ffmpeg.File, err error) {
	b, err := e.cfg.Runner.Metadata(ctx, source.URL(), source.Name())
	if err == nil {
		err = source.Failure()
	}
	if err != nil {
		return nil, f, err
	}
	file := filepath.Join(dir, fmt.Sprintf("o%d_metadata.json", idx))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return nil, f, err
	}
	if f, err = ffmpeg.DescribeMetadata(b); err != nil {
		return nil, f, fmt.Errorf("format[%d]: reading ffprobe's description: %w", idx, err)
	}
	v := videoFileOf(f)
	v.contentType, v.format, v.size = "application/json", "json", int64(len(b))
	return &outputPlan{index: idx, out: o, files: []producedFile{{name: fmt.Sprintf("metadata-%d.json", idx), path: file,
		format: "json", video: &v}}}, f, nil
}

// describeOnly runs a task whose outputs are all metadata: one ffprobe
// description of the source per output, saved; the task's duration and
// source size are the container's, as ffprobe read them.
func (e *Engine) describeOnly(ctx context.Context, token string, spec Spec, source OpenSource, dir string) error {
	var plans []*outputPlan
	for i, o := range spec.Outputs {
		p, f, err := e.describe(ctx, i, o, source, dir)
		if err != nil {
			return explainRead(err, source)
		}
		e.update(ctx, token, func(s *Snapshot) {
			s.Duration, s.SourceSize = f.Duration, f.Size
			if n := source.Size(); n > 0 {
				s.SourceSize = n
			}
		})
		plans = append(plans, p)
	}
	if err := e.progress(ctx, token, StateEncoding, 50); err != nil {
		return err
	}
	return e.save(ctx, token, plans)
}
