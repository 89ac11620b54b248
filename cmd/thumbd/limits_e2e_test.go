package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
)

// TestTaskLimits runs tasks past each per-task limit against a real thumbd
// and ffmpeg: a source with larger frames than allowed, more outputs than
// allowed (refused by start_encode2 with error 14), and more images than
// allowed once the source's length is known.
func TestTaskLimits(t *testing.T) {
	// 8000x4400 is 35.2 megapixels: over the default 7680x4320.
	dir := t.TempDir()
	big := filepath.Join(dir, "big.avi")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=8000x4400:r=25:d=0.08",
		"-c:v", "mjpeg", "-q:v", "31", big).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	bigSrv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(bigSrv.Close)
	clip := serveTestdata(t) + "/clip.mp4" // 640x360, 10 s

	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.MaxOutputs, c.MaxImages = 3, 10 }))
	thumb := map[string]any{"output": "thumbnail", "time": "0.5", "width": 160}

	t.Run("frame larger than the pixel limit", func(t *testing.T) {
		began := time.Now()
		token := startTask(t, th.base, map[string]any{"source": bigSrv.URL + "/big.avi", "format": []any{thumb}}, "")
		st := waitStatus(t, th.base, token, 60*time.Second, "completed", "error")
		if st.Status != "error" || st.ErrorDescription == nil ||
			!strings.Contains(*st.ErrorDescription, "the source's video is 8000x4400, 35.2 megapixels a frame, more than this server's limit of 33.2 megapixels (THUMBD_MAX_SOURCE_PIXELS)") {
			t.Fatalf("status %s: %v", st.Status, desc(st))
		}
		t.Logf("refused in %v: %s", time.Since(began).Round(time.Millisecond), desc(st))
	})
	t.Run("more outputs than the limit", func(t *testing.T) {
		token := createTask(t, th.base)
		q, _ := json.Marshal(map[string]any{"query": map[string]any{"source": clip, "format": []any{thumb, thumb, thumb, thumb}}})
		raw := postRaw(t, th.base, "/v1/start_encode2", url.Values{"task_token": {token}, "query": {string(q)}})
		var reply struct {
			Error   int    `json:"error"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(raw, &reply); err != nil || reply.Error != 14 ||
			!strings.Contains(reply.Message, "lists 4 outputs, more than this server's limit of 3 a task (THUMBD_MAX_OUTPUTS)") {
			t.Fatalf("start_encode2 with 4 outputs: %s", raw)
		}
	})
	t.Run("more images than the limit", func(t *testing.T) {
		token := startTask(t, th.base, map[string]any{"source": clip, "format": []any{
			map[string]any{"output": "thumbnails", "interval": 0.5, "width": 160},
		}}, "")
		st := waitStatus(t, th.base, token, 60*time.Second, "completed", "error")
		if st.Status != "error" || !strings.Contains(desc(st), "the task asks for 20 images (sprite tiles included) of its 10.0s source, more than this server's limit of 10 a task (THUMBD_MAX_IMAGES)") {
			t.Fatalf("status %s: %s", st.Status, desc(st))
		}
	})
	t.Run("within the limits", func(t *testing.T) {
		token := startTask(t, th.base, map[string]any{"source": clip, "format": []any{
			thumb, map[string]any{"output": "thumbnails", "interval": 2, "width": 160},
		}}, "")
		if st := waitStatus(t, th.base, token, 60*time.Second, "completed", "error"); st.Status != "completed" {
			t.Fatalf("status %s: %s", st.Status, desc(st))
		}
	})
}

func desc(st wireStatus) string {
	if st.ErrorDescription == nil {
		return ""
	}
	return *st.ErrorDescription
}
