package ffmpeg

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FrameRequest is one image to make: the frame a want resolves to, drawn
// by a render into the file Out.
type FrameRequest struct {
	Want   Want
	Render Render
	Out    string
}

// FrameResult is what one request got.
type FrameResult struct {
	Frame    FrameInfo // the frame delivered: its presentation time on the source's clock
	Strategy Strategy
	Took     time.Duration // wall time of the ffmpeg run that delivered it (shared by the frames of that run)
	Done     time.Duration // when it was in place, from the start of Extract
}

// Extractor takes frames from a source the way PlanExtraction plans.
type Extractor struct {
	Runner   Runner
	Workers  int    // jobs at once; default 1
	Dir      string // scratch space for graphs and frames
	Slots    Slots  // optional limit on ffmpeg runs shared with others; default Workers
	MaxSeeks int    // input seeks per process; default 4
	Progress func(done, total int)
}

// Extract makes every request's image from src, described by m and (when
// not nil) indexed by x. It returns a result per request and the plan it
// followed.
func (e *Extractor) Extract(ctx context.Context, src string, m Media, x *FrameIndex, reqs []FrameRequest) ([]FrameResult, Plan, error) {
	workers := max(1, e.Workers)
	maxSeeks := e.MaxSeeks
	if maxSeeks <= 0 {
		maxSeeks = 4
	}
	slots := e.Slots
	if slots == nil {
		slots = NewSlots(workers)
	}
	wants := make([]Want, len(reqs))
	for i, r := range reqs {
		wants[i] = r.Want
	}
	plan := PlanExtraction(x, wants, PlanOptions{Workers: workers, MaxSeeks: maxSeeks})
	byPick := make([][]int, len(plan.Picks))
	for i, pi := range plan.Want {
		byPick[pi] = append(byPick[pi], i)
	}
	r := &extraction{e: e, began: time.Now(), src: src, m: m, x: x, reqs: reqs, plan: plan, byPick: byPick,
		results: make([]FrameResult, len(reqs)), got: make([]bool, len(reqs)), slots: slots}
	r.total = len(reqs)

	var wg sync.WaitGroup
	for j := range plan.Jobs {
		wg.Go(func() {
			if err := r.slots.Acquire(ctx); err != nil {
				return
			}
			defer r.slots.Release()
			job := plan.Jobs[j]
			var err error
			if len(job.Spans) > 0 {
				err = r.runSpans(ctx, j, job)
			} else {
				err = r.runSeeks(ctx, fmt.Sprintf("s%d", j), job.Seeks, StrategyInputSeek)
			}
			if err != nil && ctx.Err() == nil {
				r.setErr(err)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, plan, ctx.Err()
	}

	// Frames a planned run did not deliver (a timestamp the decoder
	// reported differently, a damaged GOP): take them by input seek, then,
	// near the end of the stream, as the last frame that can be decoded.
	var retry []int
	for pi := range plan.Picks {
		if !r.pickDone(pi) {
			retry = append(retry, pi)
		}
	}
	for s := 0; s < len(retry); s += maxSeeks {
		chunk := retry[s:min(s+maxSeeks, len(retry))]
		if err := r.slots.Acquire(ctx); err != nil {
			return nil, plan, err
		}
		err := r.runSeeks(ctx, fmt.Sprintf("r%d", s), chunk, StrategyInputSeek)
		r.slots.Release()
		if err != nil && ctx.Err() == nil {
			r.setErr(err)
		}
	}
	for pi := range plan.Picks {
		if r.pickDone(pi) || ctx.Err() != nil {
			continue
		}
		if err := r.runTail(ctx, pi); err != nil {
			return nil, plan, err
		}
	}
	if ctx.Err() != nil {
		return nil, plan, ctx.Err()
	}
	for i := range reqs {
		if !r.got[i] {
			return nil, plan, &SourceError{Reason: fmt.Sprintf("no video frame could be decoded at %.3fs", (reqs[i].Want.At - m.VideoStart).Seconds()), Err: r.err}
		}
	}
	return r.results, plan, nil
}

// extraction is the state of one Extract call.
type extraction struct {
	e      *Extractor
	began  time.Time
	src    string
	m      Media
	x      *FrameIndex
	reqs   []FrameRequest
	plan   Plan
	byPick [][]int // requests of each pick
	slots  Slots

	mu      sync.Mutex
	results []FrameResult
	got     []bool
	done    int
	total   int
	err     error
}

func (r *extraction) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func (r *extraction) pickDone(pi int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ri := range r.byPick[pi] {
		if !r.got[ri] {
			return false
		}
	}
	return true
}

// deliver records that file holds pick pi drawn by render rk, and puts it
// in place for every request of that pick and render.
func (r *extraction) deliver(pi int, rk string, file string, info FrameInfo, s Strategy, took time.Duration) {
	if !nonEmpty(file) {
		return
	}
	var targets []int
	r.mu.Lock()
	for _, ri := range r.byPick[pi] {
		if !r.got[ri] && r.reqs[ri].Render.key() == rk {
			targets = append(targets, ri)
		}
	}
	r.mu.Unlock()
	for n, ri := range targets {
		var err error
		if n == len(targets)-1 {
			err = os.Rename(file, r.reqs[ri].Out)
		} else {
			err = copyFile(file, r.reqs[ri].Out)
		}
		if err != nil {
			r.setErr(err)
			continue
		}
		r.mu.Lock()
		r.got[ri] = true
		r.results[ri] = FrameResult{Frame: info, Strategy: s, Took: took, Done: time.Since(r.began)}
		r.done++
		done, total := r.done, r.total
		r.mu.Unlock()
		if r.e.Progress != nil {
			r.e.Progress(done, total)
		}
	}
}

// renders returns the distinct renders the requests of picks ask for, in
// a stable order, and for each the picks that need it.
func (r *extraction) renders(picks []int) ([]Render, [][]int) {
	var rs []Render
	var who [][]int
	idx := map[string]int{}
	for _, pi := range picks {
		seen := map[string]bool{}
		for _, ri := range r.byPick[pi] {
			rd := r.reqs[ri].Render
			k := rd.key()
			if seen[k] {
				continue
			}
			seen[k] = true
			n, ok := idx[k]
			if !ok {
				n = len(rs)
				idx[k] = n
				rs = append(rs, rd)
				who = append(who, nil)
			}
			who[n] = append(who[n], pi)
		}
	}
	return rs, who
}

// window is the presentation-time window that identifies frame f: a third
// of the way to its neighbours, and at most a millisecond either side.
func (r *extraction) window(f int) Window {
	t := r.x.Time(f).Seconds()
	eps := 0.001
	if f > 0 {
		eps = math.Min(eps, (t-r.x.Time(f-1).Seconds())/3)
	}
	if f+1 < r.x.Len() {
		eps = math.Min(eps, (r.x.Time(f+1).Seconds()-t)/3)
	}
	return Window{Lo: t - eps, Hi: t + eps}
}

// runSpans runs one planned job: the demuxer keeps the job's spans, the
// decoder selects its picks.
func (r *extraction) runSpans(ctx context.Context, j int, job Job) error {
	x := r.x
	var starts, ends []int64
	var picks []int
	for _, s := range job.Spans {
		starts = append(starts, x.Pos(s.Key))
		ends = append(ends, x.Pos(s.Last))
		picks = append(picks, s.Picks...)
	}
	slices.SortFunc(picks, func(a, b int) int { return r.plan.Picks[a].Frame - r.plan.Picks[b].Frame })
	first := x.Time(job.Spans[0].Key)
	last := x.Time(job.Spans[len(job.Spans)-1].Last)
	for _, s := range job.Spans {
		last = max(last, x.Time(s.Last))
	}
	seek := max(0, first-r.m.Start-time.Millisecond)
	dur := last - (r.m.Start + seek) + 500*time.Millisecond
	// NUT takes no negative timestamp: shift a stream that has some (the
	// hidden start of an edit list) so that its first packet is at 0.
	var off time.Duration
	if x.PTS(0) < 0 {
		off = (-x.TimeFloor(0) + time.Microsecond - 1).Truncate(time.Microsecond)
	}
	copyArgs := CopyArgs(r.src, r.m.Stream, seek, dur, off, KeepExpr(starts, ends))

	renders, who := r.renders(picks)
	in := Input{Options: []string{"-threads", "1", "-noautorotate", "-f", "nut"}, URL: "pipe:0"}
	for b, rd := range renders {
		ws := make([]Window, len(who[b]))
		for i, pi := range who[b] {
			w := r.window(r.plan.Picks[pi].Frame)
			ws[i] = Window{Lo: w.Lo + off.Seconds(), Hi: w.Hi + off.Seconds()}
		}
		in.Branches = append(in.Branches, Branch{Select: SelectExpr(ws), Render: rd, Frames: len(who[b]),
			Out: filepath.Join(r.e.Dir, fmt.Sprintf("j%db%d_%%06d.%s", j, b, rd.Ext))})
	}
	graphPath := filepath.Join(r.e.Dir, fmt.Sprintf("j%d.graph", j))
	args, graph := DecodeArgs([]Input{in}, graphPath)
	if err := os.WriteFile(graphPath, []byte(graph), 0o644); err != nil {
		return err
	}
	began := time.Now()
	log, err := r.e.Runner.runPipeline(ctx, copyArgs, args, nil)
	took := time.Since(began)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	infos := ParseBranches(log)
	for b, rd := range renders {
		// The k-th frame written is the k-th frame selected; both it and
		// the picks are in presentation order, and it belongs to the pick
		// whose window holds its time.
		p := 0
		for k, info := range infos[b] {
			if k >= len(who[b]) {
				break
			}
			info.PTS -= off
			t := info.PTS.Seconds()
			for p < len(who[b]) && r.window(r.plan.Picks[who[b][p]].Frame).Hi+1e-6 < t {
				p++
			}
			if p == len(who[b]) {
				break
			}
			pi := who[b][p]
			if w := r.window(r.plan.Picks[pi].Frame); t >= w.Lo-1e-6 {
				file := strings.Replace(in.Branches[b].Out, "%06d", fmt.Sprintf("%06d", k+1), 1)
				r.deliver(pi, rd.key(), file, info, r.plan.Picks[pi].Strategy, took)
				p++
			}
		}
	}
	// A failed run is retried frame by frame; only report it if nothing
	// came out of it.
	if err != nil && len(infos) == 0 {
		return err
	}
	return nil
}

// runSeeks takes picks with one input seek each, in one ffmpeg process.
func (r *extraction) runSeeks(ctx context.Context, name string, picks []int, s Strategy) error {
	var inputs []Input
	type out struct {
		pi   int
		rk   string
		file string
	}
	var outs []out
	for i, pi := range picks {
		p := r.plan.Picks[pi]
		opts := []string{"-threads", "1", "-noautorotate"} // renders rotate (RotateFilter)
		at := p.At
		if p.Frame < 0 && p.Accuracy == AccuracyKeyframe {
			// No index: the keyframe at or before the time, where the
			// demuxer lands; the first frame decoded from there. (Not
			// -skip_frame nokey: without packet timestamps, ffmpeg's
			// guesses go wrong when it skips frames.)
			opts = append(opts, "-noaccurate_seek")
		} else if p.Frame >= 0 && r.x.Key(p.Frame) {
			opts = append(opts, "-skip_frame", "nokey")
		}
		seek := floorMicro(max(0, at-r.m.Start))
		if p.Frame < 0 && p.Accuracy == AccuracyExact {
			last := r.m.LastFrame - r.m.Start
			seek = min(seek, max(0, last-min(r.m.FrameDur/4, time.Millisecond)))
		}
		if at > r.m.VideoStart {
			opts = append(opts, "-ss", FormatSeconds(seek))
		} // else the first frame: no seek at all (some AVI files decode nothing after -ss 0)
		in := Input{Options: opts, URL: r.src}
		renders, _ := r.renders([]int{pi})
		for b, rd := range renders {
			file := filepath.Join(r.e.Dir, fmt.Sprintf("%s_i%db%d.%s", name, i, b, rd.Ext))
			in.Branches = append(in.Branches, Branch{Render: rd, Frames: 1, Out: file})
			outs = append(outs, out{pi, rd.key(), file})
		}
		inputs = append(inputs, in)
	}
	graphPath := filepath.Join(r.e.Dir, name+".graph")
	args, graph := DecodeArgs(inputs, graphPath)
	if err := os.WriteFile(graphPath, []byte(graph), 0o644); err != nil {
		return err
	}
	began := time.Now()
	_, log, err := r.e.Runner.run(ctx, r.e.Runner.FFmpeg, args)
	took := time.Since(began)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	infos := ParseBranches(log)
	for b, o := range outs {
		if fr := infos[b]; len(fr) > 0 {
			r.deliver(o.pi, o.rk, o.file, fr[0], s, took)
		}
	}
	if err != nil && len(infos) == 0 {
		return err
	}
	return nil
}

// runTail takes the last decodable frame for a pick near the end of the
// stream that no seek delivered: a stream shorter than its packets claim,
// or a damaged tail.
func (r *extraction) runTail(ctx context.Context, pi int) error {
	p := r.plan.Picks[pi]
	if p.At < r.m.LastFrame-3*time.Second {
		return &SourceError{Reason: fmt.Sprintf("no video frame could be decoded at %.3fs", (p.At - r.m.VideoStart).Seconds()), Err: r.err}
	}
	renders, _ := r.renders([]int{pi})
	for b, rd := range renders {
		file := filepath.Join(r.e.Dir, fmt.Sprintf("t%d_%d.%s", pi, b, rd.Ext))
		if err := r.slots.Acquire(ctx); err != nil {
			return err
		}
		began := time.Now()
		_, log, err := r.e.Runner.run(ctx, r.e.Runner.FFmpeg, LastFrameArgs(r.src, Grab{Filter: rd.Filter, Codec: rd.Codec, Out: file}))
		r.slots.Release()
		info, ok := lastShowinfo(log)
		if !ok || !nonEmpty(file) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				err = r.err
			}
			return &SourceError{Reason: fmt.Sprintf("no video frame could be decoded at %.3fs", (p.At - r.m.VideoStart).Seconds()), Err: err}
		}
		r.deliver(pi, rd.key(), file, info, StrategyTail, time.Since(began))
	}
	return nil
}

// floorMicro rounds d down to the microsecond, so that a seek to a
// frame's time never lands after the frame.
func floorMicro(d time.Duration) time.Duration { return d.Truncate(time.Microsecond) }

// lastShowinfo returns the last frame showinfo reported: with -update 1 the
// output file holds that frame.
func lastShowinfo(log []byte) (FrameInfo, bool) {
	var last FrameInfo
	found := false
	var tb [2]int64
	for _, line := range strings.Split(string(log), "\n") {
		if m := showinfoTB.FindStringSubmatch(line); m != nil {
			fmt.Sscan(m[2], &tb[0])
			fmt.Sscan(m[3], &tb[1])
			continue
		}
		if m := showinfoFrame.FindStringSubmatch(line); m != nil && tb[1] != 0 {
			var pts int64
			fmt.Sscan(m[3], &pts)
			last = FrameInfo{PTS: seconds(float64(pts) * float64(tb[0]) / float64(tb[1])), Keyframe: m[4] == "1"}
			found = true
		}
	}
	return last, found
}

func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
