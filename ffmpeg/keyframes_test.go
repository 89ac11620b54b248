package ffmpeg

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/cliptest"
)

// bframes is a stream of 10 frames at 1/25 s (time base 1/25) in decode
// order with two B-frames between anchors, a keyframe at 0 and at 6, and
// byte positions that grow with decode order, as ffprobe lists them with
// IndexArgs.
var bframes = []string{
	"0,100,K_", // I0
	"3,200,__", // P3
	"1,300,__", // B1
	"2,400,__", // B2
	"6,500,K_", // I6
	"4,600,__", // B4
	"5,700,__", // B5
	"9,800,__", // P9
	"7,900,__", // B7
	"8,1000,__",
}

func TestReadIndex(t *testing.T) {
	tests := []struct {
		name     string
		lines    []string
		limit    int
		pts      []int64
		keys     []int
		decode   []int
		pos      []int64
		wantErr  error
		errMatch string
	}{
		{
			name: "B-frames come after their anchor in decode order", lines: bframes,
			pts: []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, keys: []int{0, 6},
			decode: []int{0, 2, 3, 1, 5, 6, 4, 8, 9, 7},
			pos:    []int64{100, 300, 400, 200, 600, 700, 500, 900, 1000, 800},
		},
		{
			name:  "blank lines are left out, discarded packets kept",
			lines: []string{"-2,60,KD", "0,100,K_", "", "2,200,__", "1,300,__"},
			pts:   []int64{-2, 0, 1, 2}, keys: []int{0, 1}, decode: []int{0, 1, 3, 2}, pos: []int64{60, 100, 300, 200},
		},
		{name: "a packet without a timestamp: no index", lines: []string{"0,10,K_", "N/A,50,__", "1,60,__"}, wantErr: errNoTimestamps},
		{
			name:  "a packet without a position is kept, at -1",
			lines: []string{"0,N/A,K__", "1,N/A,___"},
			pts:   []int64{0, 1}, keys: []int{0}, decode: []int{0, 1}, pos: []int64{-1, -1},
		},
		{name: "too many frames", lines: bframes, limit: 5, wantErr: errIndexTooLong},
		{name: "no packets", lines: []string{""}, errMatch: "no packets"},
		{name: "nothing shown", lines: []string{"0,1,KD", "1,2,_D"}, errMatch: "no frame to show"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := ReadIndex(strings.NewReader(strings.Join(tt.lines, "\n")), 1, 25, tt.limit)
			if tt.wantErr != nil || tt.errMatch != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errMatch) {
					t.Fatalf("error = %v, want %v %q", err, tt.wantErr, tt.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var pts, pos []int64
			var keys, decode []int
			for i := range x.Len() {
				pts = append(pts, x.PTS(i))
				pos = append(pos, x.Pos(i))
				decode = append(decode, x.Decode(i))
				if x.Key(i) {
					keys = append(keys, i)
				}
			}
			if !slices.Equal(pts, tt.pts) || !slices.Equal(keys, tt.keys) || !slices.Equal(decode, tt.decode) || !slices.Equal(pos, tt.pos) {
				t.Errorf("pts %v keys %v decode %v pos %v\nwant %v %v %v %v", pts, keys, decode, pos, tt.pts, tt.keys, tt.decode, tt.pos)
			}
			shownKeys := 0
			for _, k := range tt.keys {
				if x.Shown(k) {
					shownKeys++
				}
			}
			if x.Keyframes() != shownKeys {
				t.Errorf("Keyframes() = %d, want %d shown", x.Keyframes(), shownKeys)
			}
		})
	}
	if _, err := ReadIndex(strings.NewReader("0,1,K_"), 0, 25, 0); err == nil {
		t.Error("a zero time base was accepted")
	}
}

func TestFrameIndexLookups(t *testing.T) {
	x := IndexFromPackets(1, 25, bframes...) // frame n at n*40 ms, keyframes 0 and 6
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	tests := []struct {
		at                 time.Duration
		atOrAfter, nearest int
		keyBefore          int // of atOrAfter
	}{
		{at: 0, atOrAfter: 0, nearest: 0, keyBefore: 0},
		{at: ms(40), atOrAfter: 1, nearest: 0, keyBefore: 0},
		{at: ms(41), atOrAfter: 2, nearest: 0, keyBefore: 0},
		{at: ms(119), atOrAfter: 3, nearest: 0, keyBefore: 0},
		{at: ms(120), atOrAfter: 3, nearest: 6, keyBefore: 0}, // 120 ms from each keyframe: the later wins
		{at: ms(200), atOrAfter: 5, nearest: 6, keyBefore: 0},
		{at: ms(240), atOrAfter: 6, nearest: 6, keyBefore: 6},
		{at: ms(360), atOrAfter: 9, nearest: 6, keyBefore: 6},
		{at: ms(361), atOrAfter: 9, nearest: 6, keyBefore: 6}, // past the last frame: the last frame
		{at: time.Hour, atOrAfter: 9, nearest: 6, keyBefore: 6},
		{at: -time.Second, atOrAfter: 0, nearest: 0, keyBefore: 0},
	}
	for _, tt := range tests {
		f := x.AtOrAfter(tt.at)
		if f != tt.atOrAfter {
			t.Errorf("AtOrAfter(%v) = %d, want %d", tt.at, f, tt.atOrAfter)
		}
		if k := x.NearestKey(tt.at); k != tt.nearest {
			t.Errorf("NearestKey(%v) = %d, want %d", tt.at, k, tt.nearest)
		}
		if k := x.KeyAtOrBefore(f); k != tt.keyBefore {
			t.Errorf("KeyAtOrBefore(%d) = %d, want %d", f, k, tt.keyBefore)
		}
	}
	if got := x.Time(7); got != 280*time.Millisecond {
		t.Errorf("Time(7) = %v", got)
	}
	if !x.Positioned() {
		t.Error("Positioned() = false")
	}

	// Times are compared exactly, in the stream's ticks: 90 kHz ticks of
	// frames at 1/29.97 s do not fall on a microsecond.
	ts := IndexFromPackets(1, 90000, "3003,0,K_", "6006,1,__", "9009,2,__")
	if got := ts.Time(1); got != 66733*time.Microsecond {
		t.Errorf("Time of 6006/90000 = %v, want 66.733ms", got)
	}
	if got := ts.TimeFloor(1); got != 66733333*time.Nanosecond || ts.AtOrAfter(got) != 1 {
		t.Errorf("TimeFloor of 6006/90000 = %v (frame %d), want 66.733333ms (frame 1)", got, ts.AtOrAfter(got))
	}
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{
		{ts.Time(1), 1}, // 66.733 ms, rounded down from 66.7333...
		{ts.Time(1) + time.Microsecond, 2},
		{ts.Time(1) + 333*time.Nanosecond, 1},
		{ts.Time(1) + 334*time.Nanosecond, 2},
		{ts.Time(1) - 11*time.Microsecond, 1},
		{ts.Time(0) + 6*time.Microsecond, 1},
	} {
		if got := ts.AtOrAfter(tt.at); got != tt.want {
			t.Errorf("AtOrAfter(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	// A stream that starts before its first keyframe (leading frames of an
	// open GOP).
	open := IndexFromPackets(1, 25, "2,0,K_", "0,1,__", "1,2,__", "3,3,__")
	if k := open.KeyAtOrBefore(0); k != -1 {
		t.Errorf("KeyAtOrBefore a leading frame = %d, want -1", k)
	}
	noPos := IndexFromPackets(1, 25, "0,N/A,K_")
	if noPos.Positioned() {
		t.Error("an index without positions says it has them")
	}

	// An MP4 cut with -c copy: its first GOP starts before the edit list
	// does, so the keyframe is decoded but not shown.
	cut := IndexFromPackets(1, 25, "-3,10,KD", "-1,20,_D", "-2,30,_D", "1,40,__", "0,50,__", "4,60,__", "2,70,__", "3,80,__", "5,90,K_")
	if cut.Frames() != 6 || cut.Keyframes() != 1 || cut.Nth(0) != 3 || cut.Shown(0) || !cut.Shown(3) {
		t.Fatalf("frames %d keyframes %d nth(0) %d: want 6 frames shown from position 3, one keyframe shown", cut.Frames(), cut.Keyframes(), cut.Nth(0))
	}
	for _, tt := range []struct {
		at                          time.Duration
		atOrAfter, nearest, keyBack int
	}{
		{at: -time.Second, atOrAfter: 3, nearest: 8, keyBack: 0},
		{at: 0, atOrAfter: 3, nearest: 8, keyBack: 0},
		{at: ms(40), atOrAfter: 4, nearest: 8, keyBack: 0},
		{at: ms(200), atOrAfter: 8, nearest: 8, keyBack: 8},
	} {
		f := cut.AtOrAfter(tt.at)
		if f != tt.atOrAfter || cut.NearestKey(tt.at) != tt.nearest || cut.KeyAtOrBefore(f) != tt.keyBack {
			t.Errorf("cut at %v: AtOrAfter %d NearestKey %d KeyAtOrBefore %d, want %d %d %d", tt.at, f, cut.NearestKey(tt.at), cut.KeyAtOrBefore(f), tt.atOrAfter, tt.nearest, tt.keyBack)
		}
	}
}

// TestIndexInParts reads a source's index in one piece and in parts read
// at once, and checks that they are the same.
func TestIndexInParts(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a clip with ffmpeg")
	}
	for _, c := range []cliptest.Trap{
		{Rate: "25", Frames: 1000, X264: "keyint=30:bframes=3:b-pyramid=normal"},
		{Rate: "25", Frames: 1000, X264: "keyint=45:open-gop=1:bframes=2", Format: "mpegts", Extra: []string{"-output_ts_offset", "5"}},
	} {
		src := cliptest.MakeTrap(t, c)
		ctx := context.Background()
		r := Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
		m, err := r.Probe(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := r.Index(ctx, src, m, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, parts := range []int{2, 3} {
			x, err := r.indexParts(ctx, src, m, parts)
			if err != nil {
				t.Fatalf("%s in %d parts: %v", c.Format, parts, err)
			}
			if x.Len() != whole.Len() || x.Len() != 1000 || !slices.Equal(x.pts, whole.pts) || !slices.Equal(x.pos, whole.pos) ||
				!slices.Equal(x.dec, whole.dec) || !slices.Equal(x.keys, whole.keys) {
				t.Errorf("%s in %d parts: %d frames, %d keyframes; in one piece %d, %d", c.Format, parts, x.Len(), x.Keyframes(), whole.Len(), whole.Keyframes())
			}
		}
	}
}
