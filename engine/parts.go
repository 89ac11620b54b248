package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

// Part is a share of a task's outputs that runs as a job of its own: the
// outputs First to First+Count-1 of the task's spec or, when To is not 0,
// a chunk of the series First: its images From to To-1 (0-based, in time
// order; a chunk of a sprite series begins a sheet). A task spread into
// Parts parts completes when every part is done.
type Part struct {
	Token    string
	Index    int // 0 .. Parts-1
	Parts    int // how many parts the task was spread into
	First    int // index of the part's first output
	Count    int // how many outputs it makes
	From, To int // a chunk of a series: its images From to To-1; To 0: whole outputs
}

// String names the part for people: "part 3 of 12 (outputs 8 to 11)", or
// "part 4 of 12 (images 101 to 150 of output 2)".
func (p Part) String() string {
	if p.To > 0 {
		return fmt.Sprintf("part %d of %d (images %d to %d of output %d)", p.Index+1, p.Parts, p.From+1, p.To, p.First)
	}
	return fmt.Sprintf("part %d of %d (outputs %d to %d)", p.Index+1, p.Parts, p.First, p.First+p.Count-1)
}

// Spreader is a Queue that can run a task's parts as jobs of their own, so
// that the processes sharing the queue make one task's outputs at once
// (riverq on PostgreSQL).
type Spreader interface {
	// EnqueueParts queues a task's parts; a part already queued, running
	// or done is not queued again.
	EnqueueParts(ctx context.Context, parts []Part) error
	// SetPartWork sets what runs a part; it is called before Run.
	SetPartWork(work func(ctx context.Context, p Part) error)
	// PartDone records p as done (by this process) and returns how many
	// parts of its task are. Of parts finishing at the same time, only the
	// last to record itself is told that all (p.Parts) are.
	PartDone(ctx context.Context, p Part) (done int, err error)
}

// partRun is what a part being run collects instead of writing into the
// task's status: its entries, merged into the status when it ends, and
// what it learned of the source, which the part that ends the task
// assembles its chunked series with.
type partRun struct {
	Part
	images []Image
	videos []Video
	media  ffmpeg.Media
	index  *ffmpeg.FrameIndex
}

type partKey struct{}

// partOf returns the part ctx runs, or nil for a whole task.
func partOf(ctx context.Context) *partRun {
	p, _ := ctx.Value(partKey{}).(*partRun)
	return p
}

// has reports whether output i is one of the part's.
func (p *partRun) has(i int) bool { return i >= p.First && i < p.First+p.Count }

// replaces reports whether a status entry of output i, number n, is one
// the part makes: an earlier run of the part recorded it, and the part's
// own entry takes its place.
func (p *partRun) replaces(i, n int) bool {
	if p.To == 0 {
		return p.has(i)
	}
	return slices.ContainsFunc(p.images, func(im Image) bool { return im.Output == i && im.N == n })
}

// spreads returns the parts a task is spread into, or nil when it runs as
// one job. It spreads when spreading is on (Config.PartOutputs) and the
// queue can run parts, and the task has more outputs than one part makes
// or a series of more images than Config.PartImages. Outputs are grouped
// PartOutputs to a part, in order; such a series is cut into chunks of
// about PartImages images (whole sprite sheets), each a part. The source
// it opened to count a series' images, if any, is returned open, for the
// caller to run the task with when it is not spread, and to close.
func (e *Engine) spreads(ctx context.Context, token string, spec Spec) ([]Part, OpenSource) {
	n := e.cfg.PartOutputs
	if _, ok := e.queue.(Spreader); !ok || n <= 0 || onlyMetadata(spec) {
		return nil, nil
	}
	chunks, source := e.chunks(ctx, token, spec)
	if len(spec.Outputs) <= n && len(chunks) == 0 {
		return nil, source
	}
	var parts []Part
	group := func(first, end int) {
		for ; first < end; first += n {
			parts = append(parts, Part{First: first, Count: min(n, end-first)})
		}
	}
	first := 0
	for i := range spec.Outputs {
		if cs, ok := chunks[i]; ok {
			group(first, i)
			parts = append(parts, cs...)
			first = i + 1
		}
	}
	group(first, len(spec.Outputs))
	for i := range parts {
		parts[i].Token, parts[i].Index, parts[i].Parts = token, i, len(parts)
	}
	return parts, source
}

// chunks returns the chunks (Part.From, To) of each series of spec with
// more images than Config.PartImages, by output. It probes the source to
// count the images (or takes what the probe cache knows), and returns it
// open; a source it cannot read is not chunked, and the run of the task
// says what is wrong with it.
func (e *Engine) chunks(ctx context.Context, token string, spec Spec) (map[int][]Part, OpenSource) {
	size := e.cfg.PartImages
	if size <= 0 || !slices.ContainsFunc(spec.Outputs, func(o Output) bool { return o.Kind == KindThumbnails }) {
		return nil, nil
	}
	media, source := e.measure(ctx, token, spec.Source)
	if source == nil {
		return nil, nil
	}
	chunks := map[int][]Part{}
	for i, o := range spec.Outputs {
		if o.Kind != KindThumbnails {
			continue
		}
		p, err := planOutput(i, o, e.cfg.Accuracy, media, nil, "")
		if err != nil {
			continue
		}
		step := size
		if o.Sprite {
			_, _, perSheet := p.sheet()
			step = (size + perSheet - 1) / perSheet * perSheet
		}
		if p.total <= step {
			continue
		}
		for from := 0; from < p.total; from += step {
			chunks[i] = append(chunks[i], Part{First: i, Count: 1, From: from, To: min(from+step, p.total)})
		}
	}
	return chunks, source
}

// measure opens a source and probes it, or takes what the probe cache
// knows of it (where the task's run finds it again). It returns the
// source open, or nil when it cannot be read.
func (e *Engine) measure(ctx context.Context, token, src string) (ffmpeg.Media, OpenSource) {
	source, err := e.openSource(ctx, token, src)
	if err != nil {
		return ffmpeg.Media{}, nil
	}
	key := contentKey(source)
	if media, _, ok := e.probes.Get(key); ok {
		return media, source
	}
	media, err := e.cfg.Runner.Probe(ctx, source.URL())
	if err == nil {
		err = source.Failure()
	}
	if err != nil {
		source.Close()
		return ffmpeg.Media{}, nil
	}
	e.probes.Put(key, media, nil)
	return media, source
}

// spread queues a task's parts in place of running it. The task is then
// encoding; each part merges its entries into its status as it ends, and
// the last one ends the task.
func (e *Engine) spread(ctx context.Context, token string, parts []Part) error {
	e.update(ctx, token, func(s *Snapshot) {
		if s.State == StateQueued {
			s.State = StateEncoding
			s.Percent = max(s.Percent, 5)
		}
	})
	if err := e.queue.(Spreader).EnqueueParts(ctx, parts); err != nil {
		return fmt.Errorf("queueing the parts of task %s: %w", Redact(token), err)
	}
	e.log.Info("task spread into parts", "task", Redact(token), "parts", len(parts))
	return nil
}

// runPart makes one part of a task and merges what it stored into the
// task's status; the part that finds every part done ends the task. A part
// that fails ends the task in error (once: the other parts then find it
// ended and do nothing). Like runTask, it returns an error wrapping
// ErrInterrupted for a part stopped by shutdown, and an error for a
// failure to read or write the store or the queue.
func (e *Engine) runPart(ctx context.Context, part Part) error {
	token := part.Token
	rec, err := e.claim(ctx, token)
	if rec == nil {
		return err
	}
	if part.First+part.Count > len(rec.Spec.Outputs) {
		return e.end(ctx, token, *rec.Spec, fmt.Errorf("%s names outputs the task does not have", part), 0)
	}
	ctx, untrack := e.track(ctx, fmt.Sprintf("%s#%d", token, part.Index))
	defer untrack()
	began := time.Now()
	pr := &partRun{Part: part}
	err = e.attemptPart(context.WithValue(ctx, partKey{}, pr), token, *rec.Spec, part)
	switch {
	case errors.Is(context.Cause(ctx), errForgotten):
		return nil
	case err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.log.Warn("part interrupted by shutdown; it stays queued", "task", Redact(token), "part", part.Index)
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	case err != nil:
		return e.end(ctx, token, *rec.Spec, err, time.Since(began))
	}
	uerr := e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if r.Snap.State.Done() {
			return errEnded
		}
		r.Snap.Images = slices.DeleteFunc(r.Snap.Images, func(im Image) bool { return pr.replaces(im.Output, im.N) })
		r.Snap.Videos = slices.DeleteFunc(r.Snap.Videos, func(v Video) bool { return pr.has(v.Output) })
		r.Snap.Images = append(r.Snap.Images, pr.images...)
		r.Snap.Videos = append(r.Snap.Videos, pr.videos...)
		sortEntries(&r.Snap)
		return nil
	})
	switch {
	case errors.Is(uerr, errEnded) || errors.Is(uerr, ErrTokenNotFound):
		return nil
	case uerr != nil:
		return fmt.Errorf("recording %s of task %s: %w", part, Redact(token), uerr)
	}
	done, err := e.queue.(Spreader).PartDone(context.WithoutCancel(ctx), part)
	if err != nil {
		return fmt.Errorf("recording %s of task %s: %w", part, Redact(token), err)
	}
	e.log.Debug("part done", "task", Redact(token), "part", part.Index, "parts", part.Parts, "took", time.Since(began))
	if done < part.Parts {
		e.update(ctx, token, func(s *Snapshot) {
			if !s.State.Done() { // another part may have failed meanwhile
				s.Percent = max(s.Percent, min(99, 5+94*float64(done)/float64(part.Parts)))
			}
		})
		return nil
	}
	err = e.assemble(ctx, token, *rec.Spec, pr)
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.log.Warn("the last part was interrupted by shutdown; it stays queued", "task", Redact(token), "part", part.Index)
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	return e.end(ctx, token, *rec.Spec, err, time.Since(rec.Created))
}

// sortEntries puts a status's entries in output order, each output's in
// the order of their numbers.
func sortEntries(s *Snapshot) {
	slices.SortStableFunc(s.Images, func(a, b Image) int { return cmp.Or(a.Output-b.Output, a.N-b.N) })
	slices.SortStableFunc(s.Videos, func(a, b Video) int { return cmp.Or(a.Output-b.Output, a.N-b.N) })
}

// assemble completes the series of a task that were made in chunks, in the
// part that found every part done: for each, it writes the WebVTT file
// (its cues follow from the series' plan) and stores it where the images
// went, and the manifest, from the frames its chunks recorded in the
// status, kept (and uploaded when asked for) as a whole run keeps it. A
// series whose VTT is in the status already is left as it is. The status
// then lists each series as a task run whole lists it.
func (e *Engine) assemble(ctx context.Context, token string, spec Spec, pr *partRun) error {
	rec, err := e.store.Task(ctx, token)
	if err != nil {
		return fmt.Errorf("reading task %s: %w", Redact(token), err)
	}
	var series []int
	for i, o := range spec.Outputs {
		if o.Kind == KindThumbnails && !slices.ContainsFunc(rec.Snap.Images, func(im Image) bool { return im.Output == i && im.Kind == KindVTT }) {
			series = append(series, i)
		}
	}
	if len(series) == 0 {
		return nil
	}
	dir := filepath.Join(e.cfg.WorkDir, fmt.Sprintf("%s-a%d", token, pr.Index))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var vtts []Image
	for _, i := range series {
		o := spec.Outputs[i]
		p, err := planOutput(i, o, e.cfg.Accuracy, pr.media, pr.index, dir)
		if err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		dests := max(1, len(o.Destinations))
		want := p.total
		if o.Sprite {
			_, _, perSheet := p.sheet()
			want = (p.total + perSheet - 1) / perSheet
		}
		for _, im := range rec.Snap.Images {
			if im.Output != i || im.N%dests != 0 {
				continue // another output's, or a copy of a file in another destination
			}
			pf := producedFile{name: p.imageName(im.N / dests), kind: im.Kind, format: im.Format, width: im.Width, height: im.Height, frames: im.Frames}
			if o.Sprite {
				pf.name = p.sheetName(im.N / dests)
			}
			for _, f := range im.Frames {
				p.took = max(p.took, f.Took)
			}
			p.files = append(p.files, pf)
		}
		if len(p.files) != want {
			return fmt.Errorf("format[%d]: the series' chunks recorded %d of its %d files", i, len(p.files), want)
		}
		if err := p.addVTT(dir, pr.media.Duration(), pr.media, pr.index); err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		if err := e.saveManifest(ctx, token, p); err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		kept := e.manifestKept(token, p)
		vf := p.files[slices.IndexFunc(p.files, func(pf producedFile) bool { return pf.kind == KindVTT })]
		locs, err := e.store1(ctx, token, p, vf)
		if err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		for d, loc := range locs {
			vtts = append(vtts, Image{Output: i, N: want*dests + d, Kind: KindVTT, Format: vf.format, UserTag: o.UserTag, Location: loc, Manifest: kept})
		}
	}
	err = e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if r.Snap.State.Done() {
			return errEnded
		}
		r.Snap.Images = slices.DeleteFunc(r.Snap.Images, func(im Image) bool { return im.Kind == KindVTT && slices.Contains(series, im.Output) })
		r.Snap.Images = append(r.Snap.Images, vtts...)
		sortEntries(&r.Snap)
		return nil
	})
	if errors.Is(err, errEnded) {
		return nil
	}
	return err
}

// attemptPart makes a part's outputs under the task's time limit, in a
// scratch directory of the part's own.
func (e *Engine) attemptPart(ctx context.Context, token string, spec Spec, part Part) error {
	if e.cfg.TaskTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, e.cfg.TaskTimeout, errTaskTimeout)
		defer cancel()
	}
	dir := filepath.Join(e.cfg.WorkDir, fmt.Sprintf("%s-p%d", token, part.Index))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	err := e.execute(ctx, token, spec, dir, nil)
	if err != nil && errors.Is(context.Cause(ctx), errTaskTimeout) {
		return &timeLimitError{Limit: e.cfg.TaskTimeout}
	}
	return err
}

// errEnded stops an update of a task that has already ended.
var errEnded = errors.New("the task has ended")

// Retrier is a Queue that runs again, a limited number of times, the job
// of a task or part whose run failed outside the task (an error reading
// or writing the store or the queue). SetGiveUp sets what it calls once,
// after the last attempt failed (err is that attempt's error); it is
// called before Run. The engine then ends the task in error, so that it
// is not left encoding.
type Retrier interface {
	SetGiveUp(giveUp func(ctx context.Context, token string, err error))
}

// giveUp ends in error a task whose job (or one of whose parts) the queue
// gave up on after its last attempt failed. A task already ended, or
// forgotten, is left as it is.
func (e *Engine) giveUp(ctx context.Context, token string, cause error) {
	ctx = context.WithoutCancel(ctx)
	rec, err := e.store.Task(ctx, token)
	switch {
	case errors.Is(err, ErrTokenNotFound):
		return
	case err != nil:
		e.log.Error("ending a task the queue gave up on", "task", Redact(token), "err", err, "cause", cause)
		return
	case rec.Spec == nil || rec.Snap.State.Done():
		return
	}
	if err := e.end(ctx, token, *rec.Spec, fmt.Errorf("thumbd could not finish the task; try it again: %w", cause), time.Since(rec.Created)); err != nil {
		e.log.Error("ending a task the queue gave up on", "task", Redact(token), "err", err, "cause", cause)
	}
}
