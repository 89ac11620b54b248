package ffmpeg

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Accuracy says which frame a requested time gets.
type Accuracy string

// The accuracy modes.
const (
	// AccuracyExact delivers the first frame whose presentation time is at
	// or after the requested time (the last frame when the time is past
	// it): never more than one frame away.
	AccuracyExact Accuracy = "exact"
	// AccuracyKeyframe delivers the keyframe nearest the requested time: the
	// cheapest frame to decode, up to half a GOP away.
	AccuracyKeyframe Accuracy = "keyframe"
)

// ParseAccuracy reads an accuracy name; "" is exact.
func ParseAccuracy(s string) (Accuracy, error) {
	switch a := Accuracy(strings.ToLower(strings.TrimSpace(s))); a {
	case "", AccuracyExact:
		return AccuracyExact, nil
	case AccuracyKeyframe:
		return AccuracyKeyframe, nil
	default:
		return "", fmt.Errorf(`must be "exact" or "keyframe", got %q`, s)
	}
}

// Strategy says how a frame was extracted; the manifest and the status
// report it.
type Strategy string

// The strategies.
const (
	// StrategyKeyframe decodes the keyframe alone: the frame asked for is a
	// keyframe (exact) or the nearest one (keyframe accuracy).
	StrategyKeyframe Strategy = "keyframe"
	// StrategySeek decodes from the keyframe before the frame up to it, and
	// nothing after it.
	StrategySeek Strategy = "seek"
	// StrategyPass decodes one run from a keyframe through several frames
	// asked for: the interval is shorter than the GOP.
	StrategyPass Strategy = "pass"
	// StrategyInputSeek is ffmpeg's own input seek (-ss before -i), one
	// input per frame: used when the source could not be indexed, or to
	// retry a frame the planned run did not deliver.
	StrategyInputSeek Strategy = "input_seek"
	// StrategyTail decodes the last seconds of the stream and keeps the last
	// frame: the last resort when a seek delivers nothing.
	StrategyTail Strategy = "tail"
)

// Want is one frame an output asks for.
type Want struct {
	At       time.Duration // presentation time asked for, on the source's clock (not relative to its start)
	Accuracy Accuracy
}

// Pick is one distinct frame to extract. Wants that resolve to the same
// frame share a pick.
type Pick struct {
	Frame    int           // position in the index; -1 when planned without one
	At       time.Duration // the frame's presentation time; without an index, the time asked for
	Accuracy Accuracy      // of the wants it serves (wants of both accuracies never share a pick without an index)
	Strategy Strategy
}

// Span is a run of packets, in decode order, that one decoder is fed: from a
// keyframe to the last packet a pick in it needs. Packets outside every span
// are dropped before they reach the decoder.
type Span struct {
	Key   int   // index position of the keyframe it starts at
	Last  int   // index position of the frame whose packet ends it (the latest in decode order)
	Picks []int // the picks it delivers, in presentation order
}

// Job is one unit of work for one worker: a pipeline that reads the source
// once from its first span to its last and decodes only the spans, or (with
// Seeks) one ffmpeg process with an input seek per pick.
type Job struct {
	Spans []Span
	Seeks []int   // picks taken by input seeks
	Cost  float64 // estimated work, in frame decodes
}

// Plan is what the planner decided: the distinct frames, which one each
// want gets, and the jobs that extract them.
type Plan struct {
	Picks []Pick
	Want  []int // Want[i] is the pick of wants[i]
	Jobs  []Job
}

// PlanOptions tune the planner.
type PlanOptions struct {
	Workers  int // jobs that can run at once; the work is split into up to twice this many
	MaxSpans int // most spans in one job (bounds the length of its filter expressions); default 1000
	MaxSeeks int // most input seeks in one process (each holds a demuxer and a decoder); default 4
}

// Relative costs, in decodes of one inter frame at the source's size:
// decoding a keyframe, and demuxing (reading without decoding) one frame.
// Measured with ffmpeg 5.1 on H.264: an I frame costs about three P/B
// frames to decode; reading a packet costs about 1/100 of decoding it.
const (
	costKey   = 3.0
	costFrame = 1.0
	costRead  = 0.01

	// minJobCost is the least work worth a job of its own: starting two
	// ffmpeg processes and opening the source costs about as much as
	// decoding a few dozen frames.
	minJobCost = 100.0
)

// PlanExtraction decides how to extract the frames wants ask for. With an
// index (x not nil) every want resolves to a frame of the index: exact to
// the first frame at or after its time (the last one past the end),
// keyframe to the nearest keyframe. Each frame needs the packets from the
// keyframe at or before it up to its own, in decode order; those runs are
// merged where they overlap (several frames within one GOP: one pass) and
// spread over jobs of about equal cost. Without an index every want is an
// input seek.
func PlanExtraction(x *FrameIndex, wants []Want, o PlanOptions) Plan {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.MaxSpans <= 0 {
		o.MaxSpans = 1000
	}
	if o.MaxSeeks <= 0 {
		o.MaxSeeks = 4
	}
	if x == nil || x.Frames() == 0 || len(x.keys) == 0 || !x.Positioned() {
		return planSeeks(wants, o)
	}
	p := Plan{Want: make([]int, len(wants))}
	byFrame := map[int]int{}
	for i, w := range wants {
		f := -1
		if w.Accuracy == AccuracyKeyframe {
			f = x.NearestKey(w.At)
		}
		if f < 0 {
			f = x.AtOrAfter(w.At)
		}
		if x.KeyAtOrBefore(f) < 0 {
			// Shown before the first keyframe (leading frames of an open
			// GOP at the start): nobody can decode it, so the first frame
			// shown after a keyframe stands in for it.
			f = x.AtOrAfter(x.TimeFloor(x.keys[0]))
		}
		pi, ok := byFrame[f]
		if !ok {
			pi = len(p.Picks)
			byFrame[f] = pi
			p.Picks = append(p.Picks, Pick{Frame: f, At: x.Time(f), Accuracy: w.Accuracy})
		}
		p.Want[i] = pi
	}

	// One run per pick, from its keyframe to its own packet, in decode
	// order; sorted by where they start and merged where they overlap.
	order := make([]int, len(p.Picks))
	for i := range order {
		order[i] = i
	}
	start := func(pi int) int { return x.Decode(x.KeyAtOrBefore(p.Picks[pi].Frame)) }
	slices.SortFunc(order, func(a, b int) int {
		if d := start(a) - start(b); d != 0 {
			return d
		}
		return x.Decode(p.Picks[a].Frame) - x.Decode(p.Picks[b].Frame)
	})
	var spans []Span
	for _, pi := range order {
		f := p.Picks[pi].Frame
		k := x.KeyAtOrBefore(f)
		if n := len(spans); n > 0 && x.Decode(k) <= x.Decode(spans[n-1].Last) {
			s := &spans[n-1]
			if x.Decode(f) > x.Decode(s.Last) {
				s.Last = f
			}
			s.Picks = append(s.Picks, pi)
			continue
		}
		spans = append(spans, Span{Key: k, Last: f, Picks: []int{pi}})
	}
	for i := range spans {
		s := &spans[i]
		slices.SortFunc(s.Picks, func(a, b int) int { return p.Picks[a].Frame - p.Picks[b].Frame })
		for _, pi := range s.Picks {
			switch {
			case len(s.Picks) > 1:
				p.Picks[pi].Strategy = StrategyPass
			case p.Picks[pi].Frame == s.Key:
				p.Picks[pi].Strategy = StrategyKeyframe
			default:
				p.Picks[pi].Strategy = StrategySeek
			}
		}
	}

	// Jobs: consecutive spans of about equal cost, so that the workers
	// read disjoint parts of the source and finish together.
	costs := make([]float64, len(spans))
	total := 0.0
	prevEnd := 0
	for i, s := range spans {
		n := x.Decode(s.Last) - x.Decode(s.Key)
		costs[i] = costKey + costFrame*float64(max(n, 0)) + costRead*float64(max(x.Decode(s.Last)-prevEnd, 0))
		prevEnd = x.Decode(s.Last)
		total += costs[i]
	}
	// Twice as many jobs as workers (each worth at least minJobCost), so
	// that a worker that finishes early takes another share instead of
	// idling while the last job runs.
	jobs := 1
	if o.Workers > 1 {
		jobs = max(1, min(2*o.Workers, int(total/minJobCost)))
	}
	left := total
	var cur Job
	for i, s := range spans {
		// Each cut aims at an equal share of what is left.
		target := left / float64(max(1, jobs-len(p.Jobs)))
		full := cur.Cost+costs[i]/2 > target && len(p.Jobs) < jobs-1
		if len(cur.Spans) > 0 && (full || len(cur.Spans) >= o.MaxSpans) {
			p.Jobs = append(p.Jobs, cur)
			left -= cur.Cost
			cur = Job{}
		}
		cur.Spans = append(cur.Spans, s)
		cur.Cost += costs[i]
	}
	if len(cur.Spans) > 0 {
		p.Jobs = append(p.Jobs, cur)
	}
	return p
}

// planSeeks plans every want as an input seek: exact wants with ffmpeg's
// accurate seek (the first frame at or after the time), keyframe wants
// with the keyframe at or before it.
func planSeeks(wants []Want, o PlanOptions) Plan {
	p := Plan{Want: make([]int, len(wants))}
	type key struct {
		at time.Duration
		a  Accuracy
	}
	seen := map[key]int{}
	for i, w := range wants {
		k := key{w.At, w.Accuracy}
		pi, ok := seen[k]
		if !ok {
			pi = len(p.Picks)
			seen[k] = pi
			p.Picks = append(p.Picks, Pick{Frame: -1, At: w.At, Accuracy: w.Accuracy, Strategy: StrategyInputSeek})
		}
		p.Want[i] = pi
	}
	per := (len(p.Picks) + o.Workers - 1) / o.Workers
	per = max(1, min(per, o.MaxSeeks))
	for s := 0; s < len(p.Picks); s += per {
		j := Job{}
		for pi := s; pi < min(s+per, len(p.Picks)); pi++ {
			j.Seeks = append(j.Seeks, pi)
			j.Cost += 30
		}
		p.Jobs = append(p.Jobs, j)
	}
	return p
}
