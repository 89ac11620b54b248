package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/storage"
)

// runTask runs one task to its end. A task stopped by shutdown returns an
// error wrapping ErrInterrupted and stays queued; every other outcome ends
// the task, completed or in error, and returns nil.
func (e *Engine) runTask(ctx context.Context, token string) error {
	rec, err := e.store.Task(ctx, token)
	if err != nil {
		e.log.Error("queued task not found", "task", Redact(token), "err", err)
		return nil
	}
	if rec.Spec == nil || rec.Snap.State.Done() {
		return nil // not started, or already ended (a duplicate delivery)
	}
	spec := *rec.Spec

	log := e.log.With("task", Redact(token))
	began := time.Now()
	dir := filepath.Join(e.cfg.WorkDir, token)
	err = os.MkdirAll(dir, 0o755)
	if err == nil {
		err = e.execute(ctx, token, spec, dir)
	}
	os.RemoveAll(dir)
	if ctx.Err() != nil {
		log.Warn("task interrupted by shutdown; it stays queued")
		e.update(ctx, token, func(s *Snapshot) { s.State = StateQueued })
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	var snap Snapshot
	_ = e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if err != nil {
			r.Snap.State = StateError
			r.Snap.Error = err.Error()
		} else {
			r.Snap.State = StateCompleted
			r.Snap.Percent = 100
		}
		snap = r.Snap
		return nil
	})
	if err != nil {
		log.Warn("task failed", "err", err, "took", time.Since(began))
		e.notify(ctx, token, EventError, snap, spec)
	} else {
		log.Info("task completed", "took", time.Since(began))
	}
	e.notify(ctx, token, EventSaved, snap, spec)
	return nil
}

// progress raises a task's percent and sets its state; percent never goes
// down. Entering a new state first passes the Gate, which may hold the
// task or fail it.
func (e *Engine) progress(ctx context.Context, token string, st State, pct float64) error {
	if e.cfg.Gate != nil {
		cur, err := e.store.Task(ctx, token)
		if err == nil && cur.Snap.State != st {
			if err := e.cfg.Gate.Enter(ctx, token, st); err != nil {
				return err
			}
		}
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.State = st
		if pct > s.Percent {
			s.Percent = min(pct, 99.9)
		}
	})
	return nil
}

// plannedFrame is one frame an output needs.
type plannedFrame struct {
	requested time.Duration // from the start of the video
	want      Want          // what the planner gets: the time on the source's clock, the accuracy
	file      string
	info      FrameInfo // the frame delivered; PTS from the start of the video
	strategy  Strategy
	took      time.Duration
}

// outputPlan is the work for one output.
type outputPlan struct {
	index    int
	out      Output
	accuracy Accuracy
	geo      Geometry
	format   ImageFormat
	frames   []*plannedFrame
	files    []producedFile
	took     time.Duration // from the start of extraction to this output's last frame
}

// producedFile is a file ready to be stored.
type producedFile struct {
	name          string // file name within the output's folder
	path          string
	kind          ImageKind
	format        string
	width, height int
	frames        []Frame
}

func (e *Engine) execute(ctx context.Context, token string, spec Spec, dir string) error {
	if err := e.progress(ctx, token, StateDownloading, 1); err != nil {
		return err
	}
	src, err := e.openSource(ctx, spec.Source)
	if err != nil {
		return err
	}
	media, err := e.cfg.Runner.Probe(ctx, src)
	if err != nil {
		return err
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.Duration = media.Duration()
		s.SourceSize = media.Size
	})
	index := e.index(ctx, token, src, media)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := e.progress(ctx, token, StateEncoding, 5); err != nil {
		return err
	}

	plans := make([]*outputPlan, len(spec.Outputs))
	for i, o := range spec.Outputs {
		p, err := planOutput(i, o, e.cfg.Accuracy, media, index, dir)
		if err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		plans[i] = p
	}
	if err := e.extractAll(ctx, token, src, media, index, plans, dir); err != nil {
		return err
	}
	for _, p := range plans {
		if err := e.finishOutput(ctx, p, media, index); err != nil {
			return fmt.Errorf("format[%d]: %w", p.index, err)
		}
	}
	return e.save(ctx, token, plans)
}

// index reads the frame index of the source's video stream. A source that
// cannot be indexed is still served, by input seeks, so a failure is only
// logged.
func (e *Engine) index(ctx context.Context, token, src string, m Media) *FrameIndex {
	if m.TBNum <= 0 || m.TBDen <= 0 {
		return nil
	}
	// One ffprobe per free process slot (up to 4), each reading a part of
	// the source: at least one slot, waiting for it, then whatever else
	// is free now.
	if err := e.acquire(ctx); err != nil {
		return nil
	}
	parts := 1
	for free := true; free && parts < min(e.cfg.Workers, 4); {
		select {
		case e.procs <- struct{}{}:
			parts++
		default:
			free = false
		}
	}
	defer func() {
		for range parts {
			e.release()
		}
	}()
	began := time.Now()
	x, err := e.cfg.Runner.Index(ctx, src, m, parts)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("source not indexed; every frame will be an input seek", "task", Redact(token), "err", err)
		}
		return nil
	}
	e.log.Debug("source indexed", "task", Redact(token), "frames", x.Frames(), "keyframes", x.Keyframes(), "took", time.Since(began))
	return x
}

// extractAll takes every planned frame of every output, in one plan, so
// that outputs asking for the same frame share it.
func (e *Engine) extractAll(ctx context.Context, token, src string, m Media, x *FrameIndex, plans []*outputPlan, dir string) error {
	reqs, frames, owner := frameRequests(plans, m)
	scratch := filepath.Join(dir, "extract")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	began := time.Now()
	var mu sync.Mutex
	ex := &Extractor{
		Runner: e.cfg.Runner, Workers: e.cfg.Workers, Dir: scratch, Slots: e.procs,
		Progress: func(done, total int) {
			mu.Lock()
			defer mu.Unlock()
			pct := 5 + 80*float64(done)/float64(total)
			e.update(ctx, token, func(s *Snapshot) { s.Percent = max(s.Percent, pct) })
		},
	}
	results, plan, err := ex.Extract(ctx, src, m, x, reqs)
	if err != nil {
		return err
	}
	e.log.Debug("frames extracted", "task", Redact(token), "frames", len(reqs), "distinct", len(plan.Picks),
		"jobs", len(plan.Jobs), "indexed", x != nil, "took", time.Since(began))
	for i, res := range results {
		f := frames[i]
		f.info = FrameInfo{PTS: res.Frame.PTS - m.VideoStart, Keyframe: res.Frame.Keyframe}
		f.strategy, f.took = res.Strategy, res.Took
		owner[i].took = max(owner[i].took, res.Done)
	}
	return nil
}

// frameRequests lists what the extractor is asked for: a request per
// planned frame of every output, each with its output's rendering.
func frameRequests(plans []*outputPlan, m Media) ([]FrameRequest, []*plannedFrame, []*outputPlan) {
	var reqs []FrameRequest
	var frames []*plannedFrame
	var owner []*outputPlan
	rotate := RotateFilter(m.Rotation)
	if rotate != "" {
		rotate += ","
	}
	for _, p := range plans {
		rd := Render{Filter: rotate + FilterChain(p.geo, p.format, m.HDR()), Codec: CodecArgs(p.format, p.out.Quality), Ext: string(p.format)}
		if p.out.Sprite && p.out.Kind == KindThumbnails {
			// Tiles stay lossless until their sheet is encoded, once.
			rd = Render{Filter: rotate + FilterChain(p.geo, PNG, m.HDR()), Codec: CodecArgs(PNG, 0), Ext: string(PNG)}
		}
		for _, f := range p.frames {
			reqs = append(reqs, FrameRequest{Want: f.want, Render: rd, Out: f.file})
			frames = append(frames, f)
			owner = append(owner, p)
		}
	}
	return reqs, frames, owner
}

// save puts every produced file in its destinations, or keeps it, and
// records an image entry for each.
func (e *Engine) save(ctx context.Context, token string, plans []*outputPlan) error {
	if err := e.progress(ctx, token, StateSaving, 90); err != nil {
		return err
	}
	total := 0
	for _, p := range plans {
		total += len(p.files) * max(1, len(p.out.Destinations))
	}
	stored := 0
	for _, p := range plans {
		n := 0
		for _, pf := range p.files {
			ct := ImageFormat(pf.format).ContentType()
			switch pf.kind {
			case KindVTT:
				ct = "text/vtt"
			case KindManifest:
				ct = "application/json"
			}
			var locs []storage.Location
			if len(p.out.Destinations) == 0 {
				name := token + "/" + pf.name
				if p.out.Kind == KindThumbnails {
					name = fmt.Sprintf("%s/thumbnails-%d/%s", token, p.index, pf.name)
				}
				loc, err := e.putLocal(ctx, name, pf.path, ct)
				if err != nil {
					return fmt.Errorf("keeping %s: %w", pf.name, err)
				}
				locs = append(locs, loc)
			}
			for _, d := range p.out.Destinations {
				if pf.kind == KindManifest {
					d.URL = ManifestURL(d.URL, p.out.Kind, p.index, fmt.Sprintf("thumbnail-%d.%s", p.index, p.format))
				} else {
					d.URL = ObjectURL(d.URL, p.out.Kind, p.index, pf.name)
				}
				loc, err := e.putObject(ctx, d, pf.path, ct)
				if err != nil {
					return err
				}
				locs = append(locs, loc)
			}
			for _, loc := range locs {
				e.update(ctx, token, func(s *Snapshot) {
					s.Images = append(s.Images, Image{Output: p.index, N: n, Kind: pf.kind, Format: pf.format,
						UserTag: p.out.UserTag, Location: loc, Width: pf.width, Height: pf.height, Frames: pf.frames})
				})
				n++
				stored++
				pct := 90 + 9*float64(stored)/float64(total)
				e.update(ctx, token, func(s *Snapshot) { s.Percent = max(s.Percent, pct) })
			}
		}
	}
	return nil
}

func (e *Engine) putLocal(ctx context.Context, name, file, ct string) (storage.Location, error) {
	if e.cfg.Files == nil {
		return storage.Location{}, errors.New("no local storage configured")
	}
	f, err := os.Open(file)
	if err != nil {
		return storage.Location{}, err
	}
	defer f.Close()
	return e.cfg.Files.Put(ctx, name, f, ct)
}

func (e *Engine) putObject(ctx context.Context, d storage.Destination, file, ct string) (storage.Location, error) {
	if e.cfg.Objects == nil {
		return storage.Location{}, errors.New("no object storage configured")
	}
	f, err := os.Open(file)
	if err != nil {
		return storage.Location{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return storage.Location{}, err
	}
	return e.cfg.Objects.Put(ctx, d, f, fi.Size(), ct)
}

// ObjectURL is the URL a file of an output is uploaded to. A thumbnail's
// destination URL names the object itself, unless it ends in "/"; a series'
// URL names a folder, with or without the trailing "/" (a URL whose last
// segment has an image or .vtt extension counts as a file in that folder).
func ObjectURL(dest string, kind OutputKind, index int, name string) string {
	if kind == KindThumbnail {
		if strings.HasSuffix(dest, "/") {
			return dest + name
		}
		return dest
	}
	if i := strings.LastIndex(dest, "/"); i >= 0 {
		switch strings.ToLower(path.Ext(dest[i+1:])) {
		case ".png", ".jpg", ".jpeg", ".webp", ".vtt":
			dest = dest[:i]
		}
	}
	return strings.TrimSuffix(dest, "/") + "/" + name
}
