package source

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
)

// truncated returns the first half of file, as an interrupted download
// leaves it.
func truncated(t testing.TB, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveFile serves one file with ranges, under any path.
func serveFile(file string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, file)
	})
}

// TestSourcesThatCannotBeUsed runs a task against each kind of source that
// cannot be read and checks that it ends in error, in time, with a
// description that names the problem and the URL without credentials, and
// never the loopback URL ffmpeg read it through.
func TestSourcesThatCannotBeUsed(t *testing.T) {
	clipFile := clip(t)
	audio := makeMedia(t, "audio.m4a", "-f", "lavfi", "-i", "sine=d=3", "-c:a", "aac")
	png := makeMedia(t, "still.png", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1")
	jpg := makeMedia(t, "still.jpg", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1")
	moovLast := makeMedia(t, "moov-last.mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast")
	empty := filepath.Join(t.TempDir(), "empty.mp4")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := os.ReadFile(makeMedia(t, "loop.ts", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "10"))
	if err != nil {
		t.Fatal(err)
	}
	truncFront := truncated(t, clipFile, "trunc-front.mp4") // index first: the tail is missing
	truncLast := truncated(t, moovLast, "trunc-last.mp4")   // index last: it is missing

	stallAfter := func(n int) http.Handler { // answers, sends n bytes, then stops
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10000000")
			w.WriteHeader(http.StatusOK)
			w.Write(bytes.Repeat([]byte{0}, n))
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		})
	}
	// trickle announces 10 MB, sends the first fast bytes of a looped
	// MPEG-TS clip at once, then n bytes of it every every.
	trickle := func(fast, n int, every time.Duration) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10000000")
			w.WriteHeader(http.StatusOK)
			sent := 0
			body := bytes.Repeat(ts, 10000000/len(ts)+1)
			if fast > 0 {
				w.Write(body[:fast])
				sent = fast
			}
			for r.Context().Err() == nil && sent+n < len(body) {
				w.Write(body[sent : sent+n])
				sent += n
				http.NewResponseController(w).Flush()
				time.Sleep(every)
			}
		})
	}
	redirectLoop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("/loop%d.mp4", len(r.URL.Path)), http.StatusFound)
	})

	tests := []struct {
		name    string
		handler http.Handler
		path    string // appended to the origin URL; "http://user:pass@" replaces "http://" when it starts with "@"
		cfg     Config
		timeout time.Duration // the task's limit; 0: none
		want    []string      // in the error description
	}{
		{name: "404", handler: http.NotFoundHandler(), path: "/missing.mp4",
			want: []string{"the source answered 404 Not Found for http://127.0.0.1:", "/missing.mp4"}},
		{name: "500", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }), path: "/v.mp4",
			want: []string{"answered 500 Internal Server Error for"}},
		{name: "503 after retries", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }), path: "/v.mp4",
			want: []string{"answered 503 Service Unavailable for"}},
		{name: "403 from S3", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(403)
			io.WriteString(w, `<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		}), path: "/bucket/v.mp4", want: []string{"answered 403 Forbidden (AccessDenied) for"}},
		{name: "credentials are not shown", handler: http.NotFoundHandler(), path: "@/private/v.mp4?X-Amz-Signature=topsecret",
			want: []string{"404 Not Found for http://127.0.0.1:", "/private/v.mp4?…"}},
		{name: "redirect loop", handler: redirectLoop, path: "/start.mp4",
			want: []string{"the source redirected more than 5 times: http://127.0.0.1:"}},
		{name: "HTML page", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!DOCTYPE html><html><body>Sign in to view this video</body></html>")
		}), path: "/watch?v=1", want: []string{"the source is an HTML page, not a video"}},
		{name: "HLS playlist", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "#EXTM3U\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data\n")
		}), path: "/live.m3u8", want: []string{"HLS playlist"}},
		{name: "empty file", handler: serveFile(empty), path: "/empty.mp4", want: []string{"the source is empty (0 bytes)"}},
		{name: "empty body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), path: "/nothing.mp4",
			want: []string{"the source is empty (0 bytes)"}},
		{name: "audio only", handler: serveFile(audio), path: "/song.m4a", want: []string{"no video stream, only audio (aac)"}},
		{name: "png image", handler: serveFile(png), path: "/poster.png", want: []string{"a still image (png), not a video"}},
		{name: "jpeg image", handler: serveFile(jpg), path: "/poster.jpg", want: []string{"a still image (mjpeg), not a video"}},
		{name: "truncated, index last", handler: serveFile(truncLast), path: "/cut.mp4", want: []string{"could not be read as media: it is damaged, truncated or not a video", "moov atom not found"}},
		{name: "truncated, index first", handler: serveFile(truncFront), path: "/cut.mp4", want: []string{"the source is truncated: its video stream is declared 10.000s long, but its frames end at 5.040s"}},
		{name: "over the size limit", handler: serveFile(clipFile), path: "/clip.mp4", cfg: Config{MaxSize: 100 << 10},
			want: []string{"the source is 449.3 KiB, more than this server's limit of 100 KiB"}},
		{name: "endless body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// No Content-Length, no ranges: a live stream that never ends.
			for r.Context().Err() == nil {
				if _, err := w.Write(ts); err != nil {
					return
				}
			}
		}), path: "/live.ts", cfg: Config{MaxSize: 4 << 20}, want: []string{"the source sent more than this server's limit of 4 MiB (THUMBD_MAX_SOURCE_SIZE) without saying its size"}},
		{name: "endless body, unsized limit", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				if _, err := w.Write(ts); err != nil {
					return
				}
			}
		}), path: "/live.ts", cfg: Config{MaxSize: 1 << 30, MaxUnsizedSize: 3 << 20}, want: []string{"the source sent more than this server's limit of 3 MiB (THUMBD_MAX_UNSIZED_SOURCE_SIZE) without saying its size"}},
		{name: "slower than the minimum rate", handler: trickle(0, 100, 50*time.Millisecond), path: "/trickle.mp4",
			cfg:  Config{MinRate: 64 << 10, RateWindow: time.Second},
			want: []string{"slower than this server's minimum of 64 KiB a second (THUMBD_MIN_SOURCE_RATE)", "/trickle.mp4"}},
		{name: "slows down after the first read", handler: trickle(2<<20, 100, 50*time.Millisecond), path: "/slowing.ts",
			cfg:  Config{MinRate: 64 << 10, RateWindow: time.Second},
			want: []string{"slower than this server's minimum of 64 KiB a second (THUMBD_MIN_SOURCE_RATE)", "/slowing.ts"}},
		{name: "no answer", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}), path: "/slow.mp4", cfg: Config{HeaderTimeout: 300 * time.Millisecond}, want: []string{"the source did not answer within 300ms"}},
		{name: "stalls", handler: stallAfter(1000), path: "/stall.mp4", cfg: Config{StallTimeout: 300 * time.Millisecond},
			want: []string{"the source stopped sending data for 300ms"}},
		{name: "trickles past the task limit", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10000000")
			for i := 0; i < 400 && r.Context().Err() == nil; i++ {
				w.Write(make([]byte, 100))
				http.NewResponseController(w).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		}), path: "/trickle.mp4", timeout: 1500 * time.Millisecond, want: []string{"the task took longer than this server's time limit of 1.5s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, tt.handler)
			cfg := tt.cfg
			cfg.Guard = allowAll
			g := startGateway(t, cfg)
			src := o.URL + tt.path
			if rest, ok := strings.CutPrefix(tt.path, "@"); ok {
				src = strings.Replace(o.URL, "http://", "http://alice:hunter2@", 1) + rest
			}
			began := time.Now()
			snap := runTask(t, g, engine.Spec{Source: src}, tt.timeout)
			took := time.Since(began)
			if snap.State != engine.StateError {
				t.Fatalf("task ended %s, want error", snap.State)
			}
			t.Logf("%v: %s", took.Round(time.Millisecond), snap.Error)
			for _, w := range tt.want {
				if !strings.Contains(snap.Error, w) {
					t.Errorf("error %q does not say %q", snap.Error, w)
				}
			}
			for _, leak := range []string{g.base, "hunter2", "topsecret", "alice"} {
				if strings.Contains(snap.Error, leak) {
					t.Errorf("error %q shows %q", snap.Error, leak)
				}
			}
			if took > 10*time.Second {
				t.Errorf("took %v to fail", took)
			}
		})
	}
}

// TestRedirectsWithinTheLimit follows two redirects to the video.
func TestRedirectsWithinTheLimit(t *testing.T) {
	file := clip(t)
	o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a":
			http.Redirect(w, r, "/b", http.StatusMovedPermanently)
		case "/b":
			http.Redirect(w, r, "/clip.mp4", http.StatusTemporaryRedirect)
		default:
			http.ServeFile(w, r, file)
		}
	}))
	g := startGateway(t, Config{Guard: allowAll})
	snap := runTask(t, g, engine.Spec{Source: o.URL + "/a"}, 0)
	if snap.State != engine.StateCompleted {
		t.Fatalf("task ended %s: %s", snap.State, snap.Error)
	}
	fi, _ := os.Stat(file)
	if snap.SourceSize != fi.Size() || snap.Duration != 10*time.Second {
		t.Errorf("source_size %d duration %v, want %d and 10s", snap.SourceSize, snap.Duration, fi.Size())
	}
}

// TestBusyOriginIsRetried reads a source whose origin answers 503 to every
// other request.
func TestBusyOriginIsRetried(t *testing.T) {
	file := clip(t)
	var n int
	var mu sync.Mutex
	o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		busy := n%2 == 1
		mu.Unlock()
		if busy {
			http.Error(w, "slow down", http.StatusServiceUnavailable)
			return
		}
		http.ServeFile(w, r, file)
	}))
	g := startGateway(t, Config{Guard: allowAll})
	snap := runTask(t, g, engine.Spec{Source: o.URL + "/clip.mp4"}, 0)
	if snap.State != engine.StateCompleted {
		t.Fatalf("task ended %s: %s", snap.State, snap.Error)
	}
	if o.requests.Load() < 2 {
		t.Errorf("the origin saw %d requests; were the 503s retried?", o.requests.Load())
	}
}

// TestOriginWithoutRanges reads sources from a server that ignores Range
// and always sends the whole file: the source is downloaded once, and
// every seek reads the local copy.
func TestOriginWithoutRanges(t *testing.T) {
	larger := makeMedia(t, "larger.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "20",
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "12", "-g", "50")
	tests := []struct {
		name     string
		file     string
		length   bool // the origin says the length
		duration time.Duration
	}{
		{"fits in the first read", clip(t), true, 10 * time.Second},
		{"larger than the first read", larger, true, 20 * time.Second},
		{"length not said", larger, false, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.length {
					w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				} else {
					http.NewResponseController(w).Flush() // chunked
				}
				w.Write(data)
			}))
			spool := t.TempDir()
			g := startGateway(t, Config{Guard: allowAll, SpoolDir: spool})
			spec := engine.Spec{Source: o.URL + "/v.mp4", Outputs: []engine.Output{
				{Kind: engine.KindThumbnails, Interval: 5 * time.Second, Width: 160, Format: engine.JPEG}}}
			snap := runTask(t, g, spec, 0)
			if snap.State != engine.StateCompleted || snap.SourceSize != int64(len(data)) || snap.Duration != tt.duration {
				t.Fatalf("task ended %s (%s), source_size %d, duration %v", snap.State, snap.Error, snap.SourceSize, snap.Duration)
			}
			t.Logf("%s file: %d requests, %s served", FormatSize(int64(len(data))), o.requests.Load(), FormatSize(o.bytes.Load()))
			if o.requests.Load() != 1 || o.bytes.Load() != int64(len(data)) {
				t.Errorf("the origin served %d requests, %d bytes; want the file once: 1 request, %d bytes", o.requests.Load(), o.bytes.Load(), len(data))
			}
			// Sparse frames of a remote source are input seeks; of one
			// downloaded whole, planned from its index as a local file's.
			for _, im := range snap.Images {
				for _, f := range im.Frames {
					if f.Strategy == ffmpeg.StrategyInputSeek {
						t.Errorf("image %d: taken by input seek, as if the source were not on disk", im.N)
					}
				}
			}
			if left, _ := os.ReadDir(spool); len(left) > 0 {
				t.Errorf("the spool directory still holds %d files", len(left))
			}
		})
	}
}

// TestOriginWithoutRangesFails checks the errors of a download: a body
// shorter than its length, a body over the size limit.
func TestOriginWithoutRangesFails(t *testing.T) {
	data, err := os.ReadFile(clip(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		max    int64
		length int // Content-Length sent; 0: none
		want   string
	}{
		{"cut short", 0, len(data) + 1000, "before it had sent the whole file"},
		{"over the limit, length said", 100 << 10, len(data), "limit"},
		{"over the limit, length not said", 100 << 10, 0, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.length > 0 {
					w.Header().Set("Content-Length", fmt.Sprint(tt.length))
				} else {
					http.NewResponseController(w).Flush()
				}
				w.Write(data)
			}))
			g := startGateway(t, Config{Guard: allowAll, MaxSize: tt.max, SpoolDir: t.TempDir()})
			snap := runTask(t, g, engine.Spec{Source: o.URL + "/v.mp4"}, 0)
			if snap.State != engine.StateError || !strings.Contains(snap.Error, tt.want) {
				t.Fatalf("task ended %s: %q; want an error with %q", snap.State, snap.Error, tt.want)
			}
		})
	}
}
