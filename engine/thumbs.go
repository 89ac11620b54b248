package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/vtt"
)

// Default size of a sprite tile when an output gives no size.
const defaultTileWidth = 160

// planOutput decides which frames an output needs, at which accuracy, and
// how each is drawn. With an index, frame_number is the frame itself.
func planOutput(idx int, o Output, def ffmpeg.Accuracy, m ffmpeg.Media, x *ffmpeg.FrameIndex, dir string) (*outputPlan, error) {
	f := o.Format
	if f == "" {
		f = PNG
	}
	acc := o.Accuracy
	if acc == "" {
		acc = def
	}
	dw, dh := m.DisplaySize()
	sized := o
	if o.Sprite && o.Kind == KindThumbnails && o.Width == 0 && o.Height == 0 && o.Resolution == 0 {
		sized.Width = defaultTileWidth
	}
	geo, err := Fit(dw, dh, sized)
	if err != nil {
		return nil, err
	}
	p := &outputPlan{index: idx, out: o, accuracy: acc, geo: geo, format: f}
	dur := m.Duration()
	// Each image: where, and in which box with which name.
	type shot struct {
		at     time.Duration
		geo    Geometry
		suffix string
	}
	var shots []shot
	switch o.Kind {
	case KindThumbnail:
		var at time.Duration
		switch {
		case o.FrameNumber != nil:
			at = time.Duration(*o.FrameNumber) * m.FrameDur
		case o.StartTime != nil:
			at = *o.StartTime
		case o.Time != nil:
			at = time.Duration(*o.Time * float64(dur))
		}
		geos, names := []Geometry{geo}, []string{""}
		if len(o.Sizes) > 0 {
			geos, names = nil, nil
			for _, sz := range o.Sizes {
				boxed := o
				boxed.Width, boxed.Height, boxed.Resolution = sz.W, sz.H, 0
				g, err := Fit(dw, dh, boxed)
				if err != nil {
					return nil, err
				}
				geos, names = append(geos, g), append(names, fmt.Sprintf("_%dx%d", sz.W, sz.H))
			}
		}
		ats, tnames := []time.Duration{at}, []string{""}
		if len(o.Times) > 0 && o.FrameNumber == nil && o.StartTime == nil {
			ats, tnames = nil, nil
			for _, t := range o.Times {
				ats, tnames = append(ats, time.Duration(t*float64(dur))), append(tnames, "_"+strconv.FormatFloat(t, 'f', -1, 64))
			}
		}
		for i, at := range ats {
			for j, g := range geos {
				shots = append(shots, shot{at: at, geo: g, suffix: tnames[i] + names[j]})
			}
		}
	case KindThumbnails:
		for t := time.Duration(0); t < dur && len(shots) < maxThumbnails; t += o.Interval {
			shots = append(shots, shot{at: t, geo: geo})
		}
	}
	ext := string(f)
	if o.Sprite && o.Kind == KindThumbnails {
		ext = "png" // tiles are lossless until the sheet is encoded
	}
	for i, sh := range shots {
		at := sh.at
		want := ffmpeg.Want{At: m.VideoStart + at, Accuracy: acc}
		if o.FrameNumber != nil {
			if n := *o.FrameNumber; x != nil && n < int64(x.Frames()) {
				want.At = x.TimeFloor(x.Nth(int(n))) // the frame itself, whatever the frame rate does
				at = want.At - m.VideoStart
			} else {
				want.At -= m.FrameDur / 3 // land on the frame, not after it
			}
		}
		p.frames = append(p.frames, &plannedFrame{
			requested: at,
			want:      want,
			file:      filepath.Join(dir, fmt.Sprintf("o%d_f%05d.%s", idx, i+1, ext)),
			geo:       sh.geo,
			suffix:    sh.suffix,
		})
	}
	p.total = len(p.frames)
	return p, nil
}

// finishOutput turns an output's frames into the files to store: images as
// they are, or sprite sheets, and the WebVTT file of a series.
func (e *Engine) finishOutput(ctx context.Context, p *outputPlan, m ffmpeg.Media, x *ffmpeg.FrameIndex) error {
	dur := m.Duration()
	frameOf := func(f *plannedFrame) Frame {
		return Frame{Requested: f.requested, Actual: f.info.PTS, Keyframe: f.info.Keyframe, Strategy: f.strategy, Took: f.took}
	}
	ext := string(p.format)
	if p.out.Kind == KindThumbnail {
		// One image, or one per combination of times and sizes, its name
		// saying which (thumbnail-0_0.25_320x240.png).
		for _, f := range p.frames {
			p.files = append(p.files, producedFile{name: fmt.Sprintf("thumbnail-%d%s.%s", p.index, f.suffix, ext), suffix: f.suffix,
				path: f.file, kind: KindImage, format: ext, width: f.geo.W, height: f.geo.H, frames: []Frame{frameOf(f)}})
		}
		return p.addManifest(m, x)
	}
	if !p.out.Sprite {
		for i, f := range p.frames {
			p.files = append(p.files, producedFile{name: p.imageName(p.from + i), path: f.file, kind: KindImage, format: ext,
				width: p.geo.W, height: p.geo.H, frames: []Frame{frameOf(f)}})
		}
	} else {
		cols, _, perSheet := p.sheet()
		for s := 0; s*perSheet < len(p.frames); s++ {
			tiles := p.frames[s*perSheet : min((s+1)*perSheet, len(p.frames))]
			sheet := p.from/perSheet + s // of the whole series, when p is a chunk of it
			r := (len(tiles) + cols - 1) / cols
			out := filepath.Join(filepath.Dir(tiles[0].file), fmt.Sprintf("o%d_sprite_%04d.%s", p.index, sheet+1, ext))
			args := spriteArgs(tiles[0].file, sheet*perSheet+1, cols, r, len(tiles), CodecArgs(p.format, p.out.Quality), pixelFormat(p.format), out)
			if err := e.procs.Acquire(ctx); err != nil {
				return err
			}
			_, _, err := e.cfg.Runner.Run(ctx, args)
			e.procs.Release()
			if err != nil {
				return fmt.Errorf("building sprite sheet %d: %w", sheet+1, err)
			}
			if !nonEmpty(out) {
				return fmt.Errorf("building sprite sheet %d: ffmpeg wrote nothing", sheet+1)
			}
			pf := producedFile{name: p.sheetName(sheet), path: out, kind: KindSprite, format: ext,
				width: cols * p.geo.W, height: r * p.geo.H}
			for _, f := range tiles {
				pf.frames = append(pf.frames, frameOf(f))
			}
			p.files = append(p.files, pf)
		}
	}
	if p.chunk {
		return nil // the series' VTT and manifest are written once its chunks are made (assemble)
	}
	return p.addVTT(filepath.Dir(p.frames[0].file), dur, m, x)
}

// imageName is the name of image i (0-based) of a series without sprites.
func (p *outputPlan) imageName(i int) string {
	return fmt.Sprintf("thumb_%04d.%s", i+1, p.format)
}

// sheetName is the name of sprite sheet s (0-based) of a series.
func (p *outputPlan) sheetName(s int) string {
	return fmt.Sprintf("sprite_%04d.%s", s+1, p.format)
}

// sheet returns a sprite series' layout: tiles a row, rows a sheet, and
// tiles a sheet. A series of fewer images than a row has that many
// columns.
func (p *outputPlan) sheet() (cols, rows, perSheet int) {
	cols = p.out.Columns
	if cols <= 0 {
		cols = defaultColumns
	}
	rows = p.out.Rows
	if rows <= 0 {
		rows = defaultRows
	}
	cols = max(1, min(cols, p.total))
	return cols, rows, cols * rows
}

// cues are the WebVTT cues of a whole series: image i covers
// [i·interval, (i+1)·interval), the last one ends at the source's end,
// and each names its image, or its sprite sheet and tile.
func (p *outputPlan) cues(dur time.Duration) []vtt.Cue {
	cols, _, perSheet := 0, 0, 0
	if p.out.Sprite {
		cols, _, perSheet = p.sheet()
	}
	cues := make([]vtt.Cue, 0, p.total)
	for i := range p.total {
		start := time.Duration(i) * p.out.Interval
		end := min(start+p.out.Interval, dur)
		if i == p.total-1 {
			end = dur
		}
		text := p.imageName(i)
		if p.out.Sprite {
			t := i % perSheet
			text = fmt.Sprintf("%s#xywh=%d,%d,%d,%d", p.sheetName(i/perSheet), (t%cols)*p.geo.W, (t/cols)*p.geo.H, p.geo.W, p.geo.H)
		}
		cues = append(cues, vtt.Cue{Start: start, End: end, Text: text})
	}
	return cues
}

// addVTT writes a whole series' WebVTT file in dir and adds it, and then
// the output's manifest, to its files.
func (p *outputPlan) addVTT(dir string, dur time.Duration, m ffmpeg.Media, x *ffmpeg.FrameIndex) error {
	vttPath := filepath.Join(dir, fmt.Sprintf("o%d_thumbnails.vtt", p.index))
	if err := writeVTT(vttPath, p.cues(dur)); err != nil {
		return err
	}
	p.files = append(p.files, producedFile{name: "thumbnails.vtt", path: vttPath, kind: KindVTT, format: "vtt"})
	return p.addManifest(m, x)
}

// addManifest writes the output's manifest.json from its files and adds it
// to them.
func (p *outputPlan) addManifest(m ffmpeg.Media, x *ffmpeg.FrameIndex) error {
	man := manifest{Version: 1, Output: p.index, Kind: string(p.out.Kind), UserTag: p.out.UserTag,
		Accuracy: string(p.accuracy), Took: sec(p.took), Frames: []manifestFrame{},
		Source: manifestSource{Duration: sec(m.Duration()), Indexed: x != nil}}
	if m.FrameDur > 0 {
		man.Source.FrameRate = math.Round(1e3/m.FrameDur.Seconds()) / 1e3
	}
	if x != nil {
		man.Source.Frames, man.Source.Keyframes = x.Frames(), x.Keyframes()
	}
	if p.out.Kind == KindThumbnails {
		man.Interval = sec(p.out.Interval)
	}
	for _, pf := range p.files {
		if pf.kind != KindImage && pf.kind != KindSprite {
			continue
		}
		cols := max(1, pf.width/max(1, p.geo.W))
		for i, f := range pf.frames {
			mf := manifestFrame{File: pf.name, RequestedTime: sec(f.Requested), Time: sec(f.Actual),
				Keyframe: f.Keyframe, Strategy: string(f.Strategy), Took: sec(f.Took)}
			if pf.kind == KindSprite {
				mf.XYWH = fmt.Sprintf("%d,%d,%d,%d", (i%cols)*p.geo.W, (i/cols)*p.geo.H, p.geo.W, p.geo.H)
			}
			man.Frames = append(man.Frames, mf)
		}
	}
	name := manifestName(p.out.Kind, fmt.Sprintf("thumbnail-%d.%s", p.index, p.format))
	file := filepath.Join(filepath.Dir(p.frames[0].file), fmt.Sprintf("o%d_%s", p.index, name))
	if err := writeManifest(file, man); err != nil {
		return err
	}
	p.files = append(p.files, producedFile{name: name, path: file, kind: KindManifest, format: "json"})
	return nil
}

// spriteArgs builds the ffmpeg invocation that tiles n numbered tile images,
// starting at number start of the sequence that first belongs to, into one
// sheet of cols×rows tiles.
func spriteArgs(first string, start, cols, rows, n int, codec []string, pixfmt, out string) []string {
	pattern := spritePattern(first)
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "image2", "-framerate", "1", "-start_number", fmt.Sprint(start), "-i", pattern,
		"-frames:v", "1", "-vf", fmt.Sprintf("trim=end_frame=%d,tile=%dx%d,format=%s", n, cols, rows, pixfmt)}
	args = append(args, codec...)
	return append(args, "-f", "image2", "-update", "1", out)
}

// spritePattern turns ".../o1_f00001.png" into ".../o1_f%05d.png".
func spritePattern(first string) string {
	dir, base := filepath.Split(first)
	i := strings.LastIndex(base, "_f")
	return dir + base[:i+2] + "%05d" + path.Ext(base)
}

func writeVTT(path string, cues []vtt.Cue) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := vtt.NewWriter(f)
	for _, c := range cues {
		if err := w.Write(c); err != nil {
			f.Close()
			return fmt.Errorf("writing WebVTT: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
