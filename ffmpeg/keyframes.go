package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// FrameIndex lists the frames of a video stream in presentation order, as
// the container's packets describe them: their presentation timestamps,
// which are keyframes, where each packet comes in decode order and where it
// lies in the file. It is what the planner decides with, and it comes from
// one ffprobe run that reads the packets without decoding them.
//
// Times are kept as integer timestamps in the stream's time base, so that a
// frame is matched by its exact timestamp, never by a rounded float.
//
// A packet flagged D (before the start of an MP4 edit list, as in a file
// cut with "ffmpeg -ss T -c copy") is decoded but never shown: it is in the
// index, so that a run can start at its keyframe, but it is never a frame a
// time resolves to.
type FrameIndex struct {
	TBNum, TBDen int64   // the stream's time base
	pts          []int64 // presentation timestamps, ascending, unique
	dec          []int32 // position of each packet in decode order
	pos          []int64 // byte position of each packet in the file; -1 unknown
	key          []bool  // keyframes
	hidden       []bool  // decoded, never shown
	keys         []int   // positions of the keyframes, shown or not, ascending
	shown        []int   // positions of the frames shown, ascending
	shownKeys    []int   // positions of the keyframes shown, ascending
}

// MaxIndexFrames bounds the frames an index holds (about 21 bytes each), so
// that a day-long source cannot exhaust memory; longer sources are planned
// without an index.
const MaxIndexFrames = 3_000_000

// errIndexTooLong stops reading an index past MaxIndexFrames.
var errIndexTooLong = errors.New("too many frames to index")

// errNoTimestamps is a stream whose packets do not all carry a
// presentation timestamp.
var errNoTimestamps = errors.New("some video packets have no timestamp")

// IndexArgs builds the ffprobe invocation that lists the packets of one
// video stream of src in decode order, one "pts,pos,flags" line each.
// ffprobe only demuxes: nothing is decoded.
func IndexArgs(src string, stream int) []string {
	args := []string{"-hide_banner", "-v", "error",
		"-select_streams", strconv.Itoa(stream),
		"-show_entries", "packet=pts,pos,flags", "-of", "csv=p=0"}
	return append(args, InputArgs(src)...)
}

// ReadIndex parses IndexArgs' output: packets in decode order. A packet
// flagged D (discarded: before the start of an edit list) is kept as
// decoded but not shown; one without a timestamp makes the whole index
// unusable (the source is then served by input seeks).
func ReadIndex(r io.Reader, tbNum, tbDen int64, limit int) (*FrameIndex, error) {
	if tbNum <= 0 || tbDen <= 0 {
		return nil, fmt.Errorf("invalid time base %d/%d", tbNum, tbDen)
	}
	type pkt struct {
		pts         int64
		pos         int64
		dec         int32
		key, hidden bool
	}
	var pkts []pkt
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ptsField, rest, _ := bytes.Cut(line, []byte(","))
		posField, flags, _ := bytes.Cut(rest, []byte(","))
		pts, err := strconv.ParseInt(string(ptsField), 10, 64)
		if err != nil {
			// N/A: a frame the index cannot place (AVI, raw streams); an
			// index with holes would resolve times to the wrong frames.
			return nil, errNoTimestamps
		}
		pos, err := strconv.ParseInt(string(posField), 10, 64)
		if err != nil {
			pos = -1
		}
		if limit > 0 && len(pkts) >= limit {
			return nil, errIndexTooLong
		}
		pkts = append(pkts, pkt{pts, pos, int32(len(pkts)), bytes.IndexByte(flags, 'K') >= 0, bytes.IndexByte(flags, 'D') >= 0})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pkts) == 0 {
		return nil, errors.New("the video stream has no packets")
	}
	slices.SortStableFunc(pkts, func(a, b pkt) int { return cmpInt64(a.pts, b.pts) })
	x := &FrameIndex{TBNum: tbNum, TBDen: tbDen, pts: make([]int64, 0, len(pkts)),
		dec: make([]int32, 0, len(pkts)), pos: make([]int64, 0, len(pkts)), key: make([]bool, 0, len(pkts)),
		hidden: make([]bool, 0, len(pkts)), shown: make([]int, 0, len(pkts))}
	for _, p := range pkts {
		if n := len(x.pts); n > 0 && x.pts[n-1] == p.pts {
			continue // the same timestamp twice: the first packet stands for the frame
		}
		i := len(x.pts)
		if p.key {
			x.keys = append(x.keys, i)
			if !p.hidden {
				x.shownKeys = append(x.shownKeys, i)
			}
		}
		if !p.hidden {
			x.shown = append(x.shown, i)
		}
		x.pts = append(x.pts, p.pts)
		x.dec = append(x.dec, p.dec)
		x.pos = append(x.pos, p.pos)
		x.key = append(x.key, p.key)
		x.hidden = append(x.hidden, p.hidden)
	}
	if len(x.shown) == 0 {
		return nil, errors.New("the video stream has no frame to show")
	}
	return x, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// IndexFromPackets builds an index from packets given in decode order as
// "pts,pos,flags" lines, the way IndexArgs prints them; for tests.
func IndexFromPackets(tbNum, tbDen int64, lines ...string) *FrameIndex {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	x, err := ReadIndex(&b, tbNum, tbDen, 0)
	if err != nil {
		panic(err)
	}
	return x
}

// Len is the number of packets indexed, shown or not: positions run from 0
// to Len()-1, in presentation order.
func (x *FrameIndex) Len() int { return len(x.pts) }

// Frames is the number of frames shown.
func (x *FrameIndex) Frames() int { return len(x.shown) }

// Nth returns the position of the n-th frame shown (from 0), or -1.
func (x *FrameIndex) Nth(n int) int {
	if n < 0 || n >= len(x.shown) {
		return -1
	}
	return x.shown[n]
}

// Shown reports whether the frame at position i is shown.
func (x *FrameIndex) Shown(i int) bool { return !x.hidden[i] }

// PTS is the timestamp of frame i, in the stream's time base.
func (x *FrameIndex) PTS(i int) int64 { return x.pts[i] }

// Time is the presentation time of frame i, rounded to the microsecond as
// ffmpeg reports it.
func (x *FrameIndex) Time(i int) time.Duration {
	return x.ticksToTime(x.pts[i])
}

// TimeFloor is the presentation time of frame i rounded down to the
// nanosecond: a time that AtOrAfter resolves to frame i itself.
func (x *FrameIndex) TimeFloor(i int) time.Duration {
	n := new(big.Int).Mul(big.NewInt(x.pts[i]), big.NewInt(x.TBNum*1_000_000_000))
	q, _ := new(big.Int).DivMod(n, big.NewInt(x.TBDen), new(big.Int))
	return time.Duration(q.Int64())
}

// Key reports whether frame i is a keyframe.
func (x *FrameIndex) Key(i int) bool { return x.key[i] }

// Decode is the position of frame i's packet in decode order.
func (x *FrameIndex) Decode(i int) int { return int(x.dec[i]) }

// Pos is the byte position of frame i's packet in the file, or -1.
func (x *FrameIndex) Pos(i int) int64 { return x.pos[i] }

// Positioned reports whether every frame's packet has a byte position: the
// planned runs select packets by position.
func (x *FrameIndex) Positioned() bool {
	for _, p := range x.pos {
		if p < 0 {
			return false
		}
	}
	return true
}

// Keyframes is the number of keyframes shown.
func (x *FrameIndex) Keyframes() int { return len(x.shownKeys) }

// ticksToTime converts a timestamp to a duration, rounded to the
// microsecond.
func (x *FrameIndex) ticksToTime(t int64) time.Duration {
	us := new(big.Int).Mul(big.NewInt(t), big.NewInt(x.TBNum*1_000_000))
	us = roundDiv(us, big.NewInt(x.TBDen))
	return time.Duration(us.Int64()) * time.Microsecond
}

// ticksAtOrAfter returns the smallest timestamp, in the stream's time base,
// whose time is at or after d.
func (x *FrameIndex) ticksAtOrAfter(d time.Duration) int64 {
	// ceil(d[ns] * den / (num * 1e9))
	n := new(big.Int).Mul(big.NewInt(int64(d)), big.NewInt(x.TBDen))
	q, m := new(big.Int).DivMod(n, big.NewInt(x.TBNum*1_000_000_000), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

// cmpMidpoint compares d with the midpoint of timestamps a and b, without
// rounding: -1, 0 or 1 as d is before, at or after it.
func (x *FrameIndex) cmpMidpoint(d time.Duration, a, b int64) int {
	l := new(big.Int).Mul(big.NewInt(2*int64(d)), big.NewInt(x.TBDen))
	r := new(big.Int).Mul(big.NewInt(a+b), big.NewInt(x.TBNum*1_000_000_000))
	return l.Cmp(r)
}

// roundDiv divides, rounding halves away from zero (av_rescale's rounding).
func roundDiv(a, b *big.Int) *big.Int {
	q, m := new(big.Int).QuoRem(a, b, new(big.Int))
	m2 := new(big.Int).Abs(m)
	m2.Lsh(m2, 1)
	if m2.Cmp(new(big.Int).Abs(b)) >= 0 {
		if a.Sign()*b.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// AtOrAfter returns the first frame shown whose presentation time is at or
// after t (compared exactly, in the stream's ticks), or the last frame shown
// when t is past it.
func (x *FrameIndex) AtOrAfter(t time.Duration) int {
	ticks := x.ticksAtOrAfter(t)
	n := sort.Search(len(x.shown), func(n int) bool { return x.pts[x.shown[n]] >= ticks })
	return x.shown[min(n, len(x.shown)-1)]
}

// KeyAtOrBefore returns the last keyframe, shown or not, at or before
// position i, or -1 when there is none (a stream that does not start with a
// keyframe).
func (x *FrameIndex) KeyAtOrBefore(i int) int {
	k := sort.SearchInts(x.keys, i+1) - 1
	if k < 0 {
		return -1
	}
	return x.keys[k]
}

// NearestKey returns the keyframe shown whose time is nearest t; a tie goes
// to the later one. It returns -1 when no keyframe is shown.
func (x *FrameIndex) NearestKey(t time.Duration) int {
	keys := x.shownKeys
	if len(keys) == 0 {
		return -1
	}
	ticks := x.ticksAtOrAfter(t)
	k := sort.Search(len(keys), func(k int) bool { return x.pts[keys[k]] >= ticks })
	switch {
	case k == 0:
		return keys[0]
	case k == len(keys):
		return keys[k-1]
	}
	before, after := keys[k-1], keys[k]
	if x.cmpMidpoint(t, x.pts[before], x.pts[after]) < 0 {
		return before
	}
	return after
}

// Index lists the frames of the video stream of src as m describes it.
// With parts > 1, a long source is read by that many ffprobe processes at
// once, each from a point in time to a little past the next one; their
// lists are joined where the next one starts (matched by byte position).
// If they do not join, the source is read again in one piece.
func (r Runner) Index(ctx context.Context, src string, m Media, parts int) (*FrameIndex, error) {
	if parts > 1 && m.Duration() >= 30*time.Second {
		x, err := r.indexParts(ctx, src, m, parts)
		if err == nil || ctx.Err() != nil || errors.Is(err, errIndexTooLong) {
			return x, err
		}
	}
	l, err := r.indexLines(ctx, src, m.Stream, "")
	if err != nil {
		return nil, err
	}
	return ReadIndex(bytes.NewReader(l.data), m.TBNum, m.TBDen, MaxIndexFrames)
}

// errNoJoin is a part of a split index that does not start inside the part
// before it.
var errNoJoin = errors.New("index parts do not join")

func (r Runner) indexParts(ctx context.Context, src string, m Media, parts int) (*FrameIndex, error) {
	dur := m.Duration()
	at := func(i int) time.Duration { return m.VideoStart + time.Duration(int64(dur)*int64(i)/int64(parts)) }
	// Each part reads on 2 s past where the next one starts, so that the
	// keyframe the next one starts from is in both.
	const overlap = 2 * time.Second
	results := make([]lines, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		interval := ""
		if i > 0 {
			interval = FormatSeconds(at(i))
		}
		interval += "%"
		if i < parts-1 {
			interval += FormatSeconds(at(i+1) + overlap)
		}
		wg.Go(func() { results[i], errs[i] = r.indexLines(ctx, src, m.Stream, interval) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	joined := results[0]
	for _, next := range results[1:] {
		if len(next.starts) == 0 {
			return nil, errNoJoin
		}
		pos := next.pos(0)
		k := -1
		for i := len(joined.starts) - 1; i >= 0 && pos >= 0; i-- {
			if joined.pos(i) == pos {
				k = i
				break
			}
		}
		if k < 0 {
			return nil, errNoJoin
		}
		cut := joined.starts[k]
		joined.data = append(joined.data[:cut], next.data...)
		joined.starts = joined.starts[:k]
		for _, st := range next.starts {
			joined.starts = append(joined.starts, cut+st)
		}
	}
	return ReadIndex(bytes.NewReader(joined.data), m.TBNum, m.TBDen, MaxIndexFrames)
}

// lines is ffprobe's output, newline-terminated lines, with where each
// starts: about 30 bytes a packet.
type lines struct {
	data   []byte
	starts []int
}

// pos is the byte position in line i, or -1.
func (l lines) pos(i int) int64 {
	end := len(l.data)
	if i+1 < len(l.starts) {
		end = l.starts[i+1]
	}
	_, rest, _ := bytes.Cut(l.data[l.starts[i]:end], []byte(","))
	p, _, _ := bytes.Cut(rest, []byte(","))
	v, err := strconv.ParseInt(string(p), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// indexLines runs ffprobe over one read interval of src ("" for all of it)
// and returns its lines. It gives up past MaxIndexFrames lines, so memory
// stays bounded.
func (r Runner) indexLines(ctx context.Context, src string, stream int, interval string) (lines, error) {
	args := IndexArgs(src, stream)
	if interval != "" {
		in := InputArgs(src)
		args = append(append(slices.Clone(args[:len(args)-len(in)]), "-read_intervals", interval), in...)
	}
	cmd := r.command(ctx, r.FFprobe, args)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		return lines{}, err
	}
	if err := cmd.Start(); err != nil {
		return lines{}, &ExecError{Tool: r.FFprobe, Err: err}
	}
	defer r.track(r.FFprobe)()
	var l lines
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 4096), 64*1024)
	var perr error
	for sc.Scan() {
		if len(l.starts) > MaxIndexFrames+1000 {
			perr = errIndexTooLong
			_ = cmd.Process.Kill()
			break
		}
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
			l.starts = append(l.starts, len(l.data))
			l.data = append(append(l.data, b...), '\n')
		}
	}
	if perr == nil {
		perr = sc.Err()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return lines{}, ctx.Err()
	case perr != nil:
		return lines{}, perr
	case werr != nil:
		return lines{}, &ExecError{Tool: r.FFprobe, Err: werr, Tail: tail(errb.Bytes(), 3)}
	}
	return l, nil
}
