package static

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
)

func TestHandler(t *testing.T) {
	whole, err := fs.ReadFile(FS(), Sample)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		name, method, path, rng string
		code                    int
		body                    []byte
	}{
		{"whole", "GET", "/static/test_mini.mp4", "", 200, whole},
		{"range", "GET", "/static/test_mini.mp4", "bytes=100-1123", 206, whole[100:1124]},
		{"tail", "GET", "/static/test_mini.mp4", "bytes=-10", 206, whole[len(whole)-10:]},
		{"head", "HEAD", "/static/test_mini.mp4", "", 200, nil},
		{"missing", "GET", "/static/nothing.mp4", "", 404, nil},
		{"dot-dot", "GET", "/static/../static.go", "", 404, nil},
		{"source code", "GET", "/static/static.go", "", 404, nil},
		{"folder", "GET", "/static/", "", 404, nil},
		{"post", "POST", "/static/test_mini.mp4", "", 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: %d bytes, not the %d expected", len(body), len(tt.body))
			}
			if tt.code < 300 {
				if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
					t.Errorf("Content-Type %q", ct)
				}
				if tt.method == "HEAD" && resp.Header.Get("Content-Length") != strconv.Itoa(len(whole)) {
					t.Errorf("HEAD Content-Length %q, want %d", resp.Header.Get("Content-Length"), len(whole))
				}
			}
		})
	}
}

// TestSample checks the committed sample with ffprobe: a few seconds of
// H.264 and AAC, well under 1 MB.
func TestSample(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed (bash scripts/deps.sh ffmpeg)")
	}
	data, err := fs.ReadFile(FS(), Sample)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 512<<10 {
		t.Errorf("the sample is %d bytes; keep it under 512 KiB", len(data))
	}
	cmd := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_entries", "format=duration:stream=codec_name,width,height,sample_aspect_ratio", "-i", "pipe:0")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var probe struct {
		Format  struct{ Duration string }
		Streams []struct {
			CodecName     string `json:"codec_name"`
			Width, Height int
			SAR           string `json:"sample_aspect_ratio"`
		}
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatal(err)
	}
	d, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	if d < 3 || d > 10 {
		t.Errorf("duration %v s, want a few seconds", d)
	}
	if len(probe.Streams) != 2 || probe.Streams[0].CodecName != "h264" || probe.Streams[1].CodecName != "aac" {
		t.Fatalf("streams %+v, want h264 and aac", probe.Streams)
	}
	// Square pixels: the tests read the frame number off the picture.
	if v := probe.Streams[0]; v.Width != 640 || v.Height != 360 || v.SAR != "1:1" {
		t.Errorf("video %dx%d SAR %s, want 640x360 SAR 1:1", v.Width, v.Height, v.SAR)
	}
}
