package ffmpeg

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// gopIndex builds the index of an n-frame stream at 1/25 s a frame (frame
// k has timestamp k): anchors (I or P frames) every bf+1 frames with bf
// B-frames between them, keyframes at keys. In decode order each anchor
// comes before the B-frames shown before it, so a keyframe whose GOP is
// open is followed by the leading B-frames of the GOP before. closed adds
// an anchor just before each keyframe, so that no B-frame crosses it.
func gopIndex(n, bf int, keys []int, closed bool) *FrameIndex {
	anchor := map[int]bool{}
	for k := 0; k < n; k += bf + 1 {
		anchor[k] = true
	}
	for _, k := range keys {
		anchor[k] = true
		if closed && k > 0 {
			anchor[k-1] = true
		}
	}
	anchor[n-1] = true
	var lines []string
	prev := -1
	for a := 0; a < n; a++ {
		if !anchor[a] {
			continue
		}
		flag := "__"
		if slices.Contains(keys, a) {
			flag = "K_"
		}
		lines = append(lines, fmt.Sprintf("%d,%d,%s", a, 1000+100*len(lines), flag))
		for b := prev + 1; b < a; b++ {
			lines = append(lines, fmt.Sprintf("%d,%d,__", b, 1000+100*len(lines)))
		}
		prev = a
	}
	return IndexFromPackets(1, 25, lines...)
}

// fr is the time of frame k of a gopIndex stream.
func fr(k float64) time.Duration { return time.Duration(k * 40 * float64(time.Millisecond)) }

func TestPlanExtraction(t *testing.T) {
	closed := gopIndex(30, 2, []int{0, 10, 20}, true)
	open := gopIndex(30, 2, []int{0, 9, 18, 27}, false)
	leading := IndexFromPackets(1, 25, "2,10,K_", "0,20,__", "1,30,__", "5,40,__", "3,50,__", "4,60,__")
	exact := func(at ...time.Duration) []Want {
		var w []Want
		for _, a := range at {
			w = append(w, Want{At: a, Accuracy: AccuracyExact})
		}
		return w
	}
	type span struct {
		key, last int
		frames    []int
	}
	tests := []struct {
		name       string
		x          *FrameIndex
		wants      []Want
		frames     []int // the frame of each want
		strategies []Strategy
		spans      []span
	}{
		{name: "a keyframe is decoded alone", x: closed, wants: exact(fr(10)),
			frames: []int{10}, strategies: []Strategy{StrategyKeyframe}, spans: []span{{10, 10, []int{10}}}},
		{name: "a B-frame is decoded from its keyframe up to its own packet, after the anchor it needs", x: closed, wants: exact(fr(14)),
			frames: []int{14}, strategies: []Strategy{StrategySeek}, spans: []span{{10, 14, []int{14}}}},
		{name: "a time between frames gets the next frame", x: closed, wants: exact(fr(13.5)),
			frames: []int{14}, strategies: []Strategy{StrategySeek}, spans: []span{{10, 14, []int{14}}}},
		{name: "two frames of one GOP share one pass, which ends with the later packet", x: closed, wants: exact(fr(17), fr(12)),
			frames: []int{17, 12}, strategies: []Strategy{StrategyPass, StrategyPass}, spans: []span{{10, 17, []int{12, 17}}}},
		{name: "frames in different GOPs are separate runs", x: closed, wants: exact(fr(4), fr(25)),
			frames: []int{4, 25}, strategies: []Strategy{StrategySeek, StrategySeek}, spans: []span{{0, 4, []int{4}}, {20, 25, []int{25}}}},
		{name: "at and past the last frame: the last frame", x: closed, wants: exact(fr(29), fr(29.5), 10*time.Second),
			frames: []int{29, 29, 29}, strategies: []Strategy{StrategySeek}, spans: []span{{20, 29, []int{29}}}},
		{name: "wants of the same frame share it, whatever their accuracy", x: closed,
			wants:  []Want{{fr(11.5), AccuracyExact}, {fr(12), AccuracyExact}, {fr(10), AccuracyKeyframe}, {fr(10), AccuracyExact}},
			frames: []int{12, 12, 10, 10}, strategies: []Strategy{StrategyPass, StrategyPass, StrategyPass, StrategyPass},
			spans: []span{{10, 12, []int{10, 12}}}},
		{name: "keyframe accuracy: the nearest keyframe, the later one on a tie", x: closed,
			wants:  []Want{{fr(14), AccuracyKeyframe}, {fr(15), AccuracyKeyframe}, {fr(26), AccuracyKeyframe}},
			frames: []int{10, 20, 20}, strategies: []Strategy{StrategyKeyframe, StrategyKeyframe, StrategyKeyframe},
			spans: []span{{10, 10, []int{10}}, {20, 20, []int{20}}}},
		{name: "open GOP: a leading B-frame needs the GOP before and the keyframe after", x: open, wants: exact(fr(8)),
			frames: []int{8}, strategies: []Strategy{StrategySeek}, spans: []span{{0, 8, []int{8}}}},
		{name: "open GOP: a run through a keyframe merges with the run that starts there", x: open, wants: exact(fr(8), fr(10)),
			frames: []int{8, 10}, strategies: []Strategy{StrategyPass, StrategyPass}, spans: []span{{0, 10, []int{8, 10}}}},
		{name: "a frame shown before the first keyframe: the first keyframe stands in", x: leading, wants: exact(0, fr(1)),
			frames: []int{2, 2}, strategies: []Strategy{StrategyKeyframe}, spans: []span{{2, 2, []int{2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanExtraction(tt.x, tt.wants, PlanOptions{Workers: 1})
			var frames []int
			for _, pi := range p.Want {
				frames = append(frames, p.Picks[pi].Frame)
			}
			if !slices.Equal(frames, tt.frames) {
				t.Fatalf("frames %v, want %v", frames, tt.frames)
			}
			var strategies []Strategy
			seen := map[int]bool{}
			for _, pi := range p.Want {
				if !seen[pi] || len(tt.strategies) == len(tt.wants) {
					strategies = append(strategies, p.Picks[pi].Strategy)
				}
				seen[pi] = true
			}
			if !slices.Equal(strategies, tt.strategies) {
				t.Errorf("strategies %v, want %v", strategies, tt.strategies)
			}
			var spans []span
			for _, j := range p.Jobs {
				if len(j.Seeks) > 0 {
					t.Errorf("input seeks planned with an index: %v", j.Seeks)
				}
				for _, s := range j.Spans {
					sp := span{key: s.Key, last: s.Last}
					for _, pi := range s.Picks {
						sp.frames = append(sp.frames, p.Picks[pi].Frame)
					}
					spans = append(spans, sp)
				}
			}
			if fmt.Sprint(spans) != fmt.Sprint(tt.spans) {
				t.Errorf("spans %v, want %v", spans, tt.spans)
			}
		})
	}
}

func TestPlanExtractionJobs(t *testing.T) {
	var keys []int
	for k := 0; k < 1000; k += 10 {
		keys = append(keys, k)
	}
	x := gopIndex(1000, 2, keys, true)
	var wants []Want
	for k := 5; k < 1000; k += 10 {
		wants = append(wants, Want{At: fr(float64(k)), Accuracy: AccuracyExact}) // mid-GOP: 100 runs of equal cost
	}
	tests := []struct {
		workers, maxSpans int
		spans             []int // per job
	}{
		{workers: 1, spans: []int{100}},
		{workers: 2, spans: []int{25, 25, 25, 25}},
		{workers: 3, spans: []int{17, 16, 17, 17, 17, 16}},
		{workers: 2, maxSpans: 20, spans: []int{20, 20, 20, 20, 20}},
		// About 800 frames of work: no more than 8 jobs of at least 100.
		{workers: 200, spans: []int{12, 13, 13, 12, 12, 13, 13, 12}},
	}
	for _, tt := range tests {
		p := PlanExtraction(x, wants, PlanOptions{Workers: tt.workers, MaxSpans: tt.maxSpans})
		var got []int
		last := -1
		for _, j := range p.Jobs {
			got = append(got, len(j.Spans))
			for _, s := range j.Spans {
				if s.Key <= last {
					t.Errorf("workers %d: jobs are not consecutive runs of the stream", tt.workers)
				}
				last = s.Key
			}
		}
		if !slices.Equal(got, tt.spans) {
			t.Errorf("workers %d max %d: spans per job %v, want %v", tt.workers, tt.maxSpans, got, tt.spans)
		}
	}
}

func TestPlanWithoutIndex(t *testing.T) {
	noPos := IndexFromPackets(1, 25, "0,N/A,K_", "1,N/A,__")
	wants := []Want{{time.Second, AccuracyExact}, {time.Second, AccuracyKeyframe}, {2 * time.Second, AccuracyExact},
		{time.Second, AccuracyExact}, {3 * time.Second, AccuracyExact}, {4 * time.Second, AccuracyExact}}
	for _, x := range []*FrameIndex{nil, noPos} {
		p := PlanExtraction(x, wants, PlanOptions{Workers: 2, MaxSeeks: 2})
		if len(p.Picks) != 5 || p.Want[0] != p.Want[3] || p.Want[0] == p.Want[1] {
			t.Errorf("picks %+v want %v: one per distinct time and accuracy", p.Picks, p.Want)
		}
		var seeks []int
		for _, j := range p.Jobs {
			if len(j.Spans) > 0 || len(j.Seeks) > 2 {
				t.Errorf("job %+v: want at most 2 input seeks and no spans", j)
			}
			seeks = append(seeks, j.Seeks...)
		}
		if len(seeks) != 5 {
			t.Errorf("seeks %v, want each pick once", seeks)
		}
		for _, pk := range p.Picks {
			if pk.Frame != -1 || pk.Strategy != StrategyInputSeek {
				t.Errorf("pick %+v, want an input seek", pk)
			}
		}
	}
}
