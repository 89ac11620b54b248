package source

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// slowWriter is ffmpeg busy decoding: every write takes a while.
type slowWriter struct{ d time.Duration }

func (w slowWriter) Write(p []byte) (int, error) { time.Sleep(w.d); return len(p), nil }

// slowReader is an origin that sends n bytes every d.
type slowReader struct {
	n int
	d time.Duration
}

func (r slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.d)
	return copy(p, make([]byte, min(r.n, len(p)))), nil
}

// TestMinimumRate checks that only the time spent waiting for the origin
// counts towards its rate: a fast origin read by a busy ffmpeg passes, a
// slow origin read by an idle one does not.
func TestMinimumRate(t *testing.T) {
	tests := []struct {
		name string
		src  io.Reader
		dst  io.Writer
		slow bool
	}{
		{"fast origin, busy reader", bytes.NewReader(make([]byte, 2<<20)), slowWriter{5 * time.Millisecond}, false},
		{"slow origin, idle reader", slowReader{10, 10 * time.Millisecond}, io.Discard, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stall := time.AfterFunc(time.Hour, func() {})
			defer stall.Stop()
			var count atomic.Int64
			rate := &rateCheck{min: 1 << 20, window: 200 * time.Millisecond}
			n, err := copyBody(tt.dst, tt.src, stall, time.Minute, &count, 2<<20, rate)
			var slow *slowError
			if got := errors.As(err, &slow); got != tt.slow {
				t.Fatalf("copied %d bytes, err %v; want a slowError: %v", n, err, tt.slow)
			}
			if tt.slow && (slow.got >= slow.min || slow.over < 200*time.Millisecond) {
				t.Errorf("slowError %+v", slow)
			}
		})
	}
}
