package ffmpeg

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRenameSource(t *testing.T) {
	in := `{"streams": [{"index": 0, "codec_type": "video", "width": 320}], "format": {"filename": "http://127.0.0.1:4000/s/secret", "nb_streams": 1, "duration": "10.000000", "tags": {"a": "b"}}}`
	out, err := renameSource([]byte(in), "https://example.com/clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "127.0.0.1") || !strings.Contains(s, `"filename": "https://example.com/clip.mp4"`) {
		t.Errorf("filename not replaced:\n%s", s)
	}
	// ffprobe's order is kept: filename, nb_streams, duration, tags.
	if i, j, k := strings.Index(s, `"filename"`), strings.Index(s, `"nb_streams"`), strings.Index(s, `"tags"`); !(i < j && j < k) {
		t.Errorf("order changed:\n%s", s)
	}
	f, err := DescribeMetadata(out)
	if err != nil || f.Width != 320 || f.Duration.Seconds() != 10 {
		t.Errorf("DescribeMetadata: %+v, %v", f, err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil || len(doc) != 2 {
		t.Errorf("not the two objects: %v %s", err, out)
	}
	if _, err := renameSource([]byte(`{"streams": []}`), "x"); err == nil {
		t.Error("no format: no error")
	}
}
