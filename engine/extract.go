package engine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// maxGrabsPerProcess bounds the inputs one ffmpeg process opens, and so its
// memory.
const maxGrabsPerProcess = 16

// grabAll takes every planned frame, in as few ffmpeg processes as the
// parallelism allows, and fills in the frame each one got. progress is told
// how many of the frames are done.
func (e *Engine) grabAll(ctx context.Context, token, src string, m Media, plans []*outputPlan, all []*plannedFrame, progress func(done, total int)) error {
	type job struct {
		frame *plannedFrame
		grab  Grab
	}
	var jobs []job
	for _, p := range plans {
		filter := FilterChain(p.geo, p.format, m.HDR())
		codec := CodecArgs(p.format, p.out.Quality)
		if p.out.Sprite && p.out.Kind == KindThumbnails {
			filter = FilterChain(p.geo, PNG, m.HDR())
			codec = CodecArgs(PNG, 0)
		}
		for _, f := range p.frames {
			jobs = append(jobs, job{f, Grab{At: f.seek, Filter: filter, Codec: codec, Out: f.file}})
		}
	}
	size := (len(jobs) + e.cfg.Workers - 1) / e.cfg.Workers
	size = max(1, min(size, maxGrabsPerProcess))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		firstErr error
	)
	for start := 0; start < len(jobs); start += size {
		chunk := jobs[start:min(start+size, len(jobs))]
		wg.Go(func() {
			if err := e.acquire(ctx); err != nil {
				return
			}
			defer e.release()
			grabs := make([]Grab, len(chunk))
			for i, j := range chunk {
				grabs[i] = j.grab
			}
			_, stderr, err := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, GrabArgs(src, grabs))
			infos := ParseShowinfo(stderr)
			for i, j := range chunk {
				info, ok := infos[i]
				info, ok = e.exactFrame(ctx, src, m, j.grab, info, ok && nonEmpty(j.grab.Out))
				if ok {
					j.frame.info = info
					continue
				}
				if ctx.Err() != nil {
					break
				}
				// No frame at the seek position: past the end of a
				// stream shorter than it claims, or a damaged tail. Take
				// the last frame the decoder can give.
				_, stderr2, err2 := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, LastFrameArgs(src, j.grab))
				info2, ok2 := lastShowinfo(stderr2)
				if err2 == nil && ok2 && nonEmpty(j.grab.Out) {
					j.frame.info = info2
					continue
				}
				mu.Lock()
				if firstErr == nil {
					cause := err
					if cause == nil {
						cause = err2
					}
					firstErr = &SourceError{Reason: fmt.Sprintf("no video frame could be decoded at %.3fs", j.frame.requested.Seconds()), Err: cause}
				}
				mu.Unlock()
			}
			mu.Lock()
			done += len(chunk)
			n := done
			mu.Unlock()
			progress(n, len(jobs))
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if firstErr != nil {
		return firstErr
	}
	for _, f := range all {
		f.info.PTS -= m.VideoStart
	}
	return nil
}

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

func (e *Engine) acquire(ctx context.Context) error {
	select {
	case e.procs <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) release() { <-e.procs }

func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// exactFrame checks that a grab got the first frame at or after its target.
// Demuxers without an index (MPEG-TS, MPEG-PS, raw streams) seek to any
// packet, not to a keyframe; the decoder then drops every frame up to the
// next keyframe, which may lie well past the target, or past the end. Such a
// grab (no frame, or a keyframe more than a frame past the target) is redone
// from further back, with the frames before the target dropped explicitly.
func (e *Engine) exactFrame(ctx context.Context, src string, m Media, g Grab, info FrameInfo, ok bool) (FrameInfo, bool) {
	target := m.Start + g.At // where -ss puts its trim, in -copyts time
	missed := func() bool { return !ok || info.Keyframe && info.PTS >= target+m.FrameDur+time.Millisecond }
	for back := 2 * time.Second; g.At > 0 && back <= 128*time.Second && missed() && ctx.Err() == nil; back *= 4 {
		r := g
		r.At, r.Skip = max(0, g.At-back), target
		_, stderr, err := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, GrabArgs(src, []Grab{r}))
		if in, got := ParseShowinfo(stderr)[0]; err == nil && got && nonEmpty(r.Out) {
			info, ok = in, true
		}
		if r.At == 0 {
			break
		}
	}
	return info, ok
}
