package ffmpeg

import (
	"bytes"
	"testing"
	"time"
)

// FuzzReadIndex feeds the frame-index parser arbitrary ffprobe output, as a
// crafted source can make ffprobe print, with any time base ffmpeg can
// report (a 32-bit rational). It must never panic, and an index it returns
// must hold together: timestamps strictly ascending, every lookup landing on
// a frame of the right kind, and the floor of each frame's time resolving
// back to that frame.
func FuzzReadIndex(f *testing.F) {
	f.Add([]byte("0,48,K__\n1024,1200,___\n512,900,___\n"), int32(1), int32(12800), int64(20*time.Millisecond))
	f.Add([]byte("-1024,48,K_D\n0,500,K__\n3003,900,___\n1501,700,___\n"), int32(1001), int32(30000), int64(-time.Second))
	f.Add([]byte("N/A,48,K__\n"), int32(1), int32(25), int64(0))
	f.Add([]byte("9223372036854775807,1,K__\n-9223372036854775808,N/A,K__\n"), int32(2147483647), int32(1), int64(9223372036854775807))
	f.Add([]byte("0,,\n0,1,K\n\n 40 , 2 , K \n"), int32(1), int32(1000), int64(39*time.Millisecond))
	f.Fuzz(func(t *testing.T, data []byte, num, den int32, at int64) {
		x, err := ReadIndex(bytes.NewReader(data), int64(num), int64(den), 10_000)
		if err != nil {
			return
		}
		if x.Len() == 0 || x.Frames() == 0 {
			t.Fatalf("an index without frames: %d packets, %d shown", x.Len(), x.Frames())
		}
		for i := 1; i < x.Len(); i++ {
			if x.PTS(i) <= x.PTS(i-1) {
				t.Fatalf("timestamps not ascending at %d: %d after %d", i, x.PTS(i), x.PTS(i-1))
			}
		}
		d := time.Duration(at)
		i := x.AtOrAfter(d)
		if i < 0 || i >= x.Len() || !x.Shown(i) {
			t.Fatalf("AtOrAfter(%v) = %d, not a frame shown", d, i)
		}
		if k := x.KeyAtOrBefore(i); k != -1 && (k > i || !x.Key(k)) {
			t.Fatalf("KeyAtOrBefore(%d) = %d, not a keyframe at or before it", i, k)
		}
		if k := x.NearestKey(d); k != -1 && (k >= x.Len() || !x.Key(k) || !x.Shown(k)) {
			t.Fatalf("NearestKey(%v) = %d, not a keyframe shown", d, k)
		} else if k == -1 && x.Keyframes() > 0 {
			t.Fatalf("NearestKey(%v) = -1 with %d keyframes shown", d, x.Keyframes())
		}
		// Within the times a time.Duration can hold, the floor of a
		// frame's time resolves to the frame itself.
		for n := 0; n < min(x.Frames(), 64); n++ {
			j := x.Nth(n)
			if !fitsDuration(x, j) {
				continue
			}
			if got := x.AtOrAfter(x.TimeFloor(j)); got != j {
				t.Fatalf("AtOrAfter(TimeFloor(%d) = %v) = %d", j, x.TimeFloor(j), got)
			}
		}
	})
}

// fitsDuration reports whether frame i's time, in nanoseconds, fits in a
// time.Duration with room to spare.
func fitsDuration(x *FrameIndex, i int) bool {
	p := x.PTS(i)
	if p < 0 {
		p = -p
	}
	if p < 0 { // math.MinInt64
		return false
	}
	// |p| * num / den * 1e9 < 2^62
	return float64(p)*float64(x.TBNum)/float64(x.TBDen)*1e9 < 1<<62
}
