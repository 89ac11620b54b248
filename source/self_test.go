package source

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/static"
)

// TestSelfSources checks that a source on thumbd's own address under
// /static/ is read from the embedded files with private networks refused,
// and that everything else on loopback is still refused.
func TestSelfSources(t *testing.T) {
	g := startGateway(t, Config{Self: []string{"http://127.0.0.1:8080", "https://thumbs.example.com/tb/", "http://[::]:9090"}})
	tests := []struct {
		url     string
		wantErr string // "" reads the sample
	}{
		{"http://127.0.0.1:8080/static/test_mini.mp4", ""},
		{"http://localhost:8080/static/test_mini.mp4", ""},
		{"http://LOCALHOST:8080/static/test_mini.mp4?x=1", ""},
		{"https://thumbs.example.com/tb/static/test_mini.mp4", ""},
		{"https://thumbs.example.com:443/tb/static/test_mini.mp4", ""},
		{"http://[::1]:9090/static/test_mini.mp4", ""}, // listening on every address: loopback names match
		{"http://127.0.0.1:8080/static/nothing.mp4", "its sample video is /static/test_mini.mp4"},
		{"http://127.0.0.1:8080/static/../go.mod", "has no file"},
		{"http://127.0.0.1:8081/static/test_mini.mp4", "private"},
		{"http://127.0.0.1:8080/storage/x/y.png", "private"},
		{"http://10.0.0.1:8080/static/test_mini.mp4", "private"},
		{"http://127.0.0.1:9090/elsewhere/test_mini.mp4", "private"},
	}
	want, err := fs.ReadFile(static.FS(), static.Sample)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			checkErr := g.Check(ctx, "task", tt.url)
			src, openErr := g.Open(ctx, "task", tt.url)
			if tt.wantErr != "" {
				for _, err := range []error{checkErr, openErr} {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Errorf("error %v, want one saying %q", err, tt.wantErr)
					}
				}
				if src != nil {
					src.Close()
				}
				return
			}
			if checkErr != nil || openErr != nil {
				t.Fatalf("Check: %v; Open: %v", checkErr, openErr)
			}
			defer src.Close()
			if src.Size() != int64(len(want)) {
				t.Errorf("Size %d, want %d", src.Size(), len(want))
			}
			if strings.Contains(src.Name(), "?") {
				t.Errorf("Name %q keeps the query", src.Name())
			}
			req, _ := http.NewRequest("GET", src.URL(), nil)
			req.Header.Set("Range", "bytes=1000-1999")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, want[1000:2000]) {
				t.Errorf("range read: status %d, %d bytes, not the sample's", resp.StatusCode, len(got))
			}
		})
	}
}

// TestBytesRead checks the gateway's count of bytes read: it grows as
// ffmpeg reads and keeps what closed sources read.
func TestBytesRead(t *testing.T) {
	g := startGateway(t, Config{Self: []string{"http://127.0.0.1:8080"}})
	ctx := context.Background()
	if n := g.BytesRead(); n != 0 {
		t.Fatalf("BytesRead = %d before any source", n)
	}
	for i, want := range []int64{1000, 2000} {
		src, err := g.Open(ctx, "task", "http://127.0.0.1:8080/static/test_mini.mp4")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", src.URL(), nil)
		req.Header.Set("Range", "bytes=0-999")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := g.BytesRead(); n != want {
			t.Errorf("source %d open: BytesRead = %d, want %d", i, n, want)
		}
		src.Close()
		if n := g.BytesRead(); n != want {
			t.Errorf("source %d closed: BytesRead = %d, want %d", i, n, want)
		}
	}
}
