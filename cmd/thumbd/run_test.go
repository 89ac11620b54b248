package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/internal/frametest"
	"github.com/thumbd/thumbd/internal/s3test"
)

// sampleClip is the repository's sample: 10 s, 640x360, 25 fps, the frame
// number painted in its top band.
const sampleClip = "../../testdata/clip.mp4"

// runStatusJSON is the part of thumbd run's stdout these tests read.
type runStatusJSON struct {
	Status           string
	ErrorDescription *string `json:"error_description"`
	Images           []struct {
		Tag, URL, Kind string
		UserTag        *string `json:"user_tag"`
		Width, Height  int
		Storage        struct{ Type, Key, Bucket string }
	}
}

// thumbdRun runs `thumbd run args` with stdin and the THUMBD_* variables
// in vars; it returns the exit code, stdout and stderr.
func thumbdRun(t *testing.T, vars map[string]string, stdin string, args ...string) (int, []byte, string) {
	t.Helper()
	env, stdout, stderr := testEnv(vars)
	env.stdin = strings.NewReader(stdin)
	code, ok := subcommand(context.Background(), append([]string{"run"}, args...), env)
	if !ok {
		t.Fatal("run is not a subcommand")
	}
	return code, stdout.Bytes(), stderr.String()
}

// decodeRunStatus decodes thumbd run's stdout.
func decodeRunStatus(t *testing.T, out []byte) runStatusJSON {
	t.Helper()
	var st runStatusJSON
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("stdout is not the status JSON: %v\n%s", err, out)
	}
	return st
}

// fileOf returns the path a file:// URL names.
func fileOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" {
		t.Fatalf("url %q is not a file:// URL", raw)
	}
	return u.Path
}

// frameOf decodes an image file and reads the frame number the sample
// clip painted into it.
func frameOf(t *testing.T, b []byte) (image.Image, int) {
	t.Helper()
	img, _, err := frametest.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	n, err := frametest.ClipBand(img.Bounds()).FrameNumber(img)
	if err != nil {
		t.Fatalf("frame number: %v", err)
	}
	return img, n
}

// TestRunFlags runs the common query built from flags on the sample clip
// and checks every file it wrote, reading the frame numbers off the
// pictures rather than trusting the status.
func TestRunFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "thumbs out")
	code, stdout, stderr := thumbdRun(t, nil, "", "-source", sampleClip, "-interval", "4", "-size", "320x180",
		"-format", "jpg", "-times", "2,50%", "-out", out, "-progress", "lines")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	st := decodeRunStatus(t, stdout)
	if st.Status != "completed" {
		t.Fatalf("status %q", st.Status)
	}
	for _, want := range []string{"queued", "completed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("progress on stderr does not show %s:\n%s", want, stderr)
		}
	}
	// thumbnails every 4 s: 0, 4, 8 → frames 0, 100, 200; then the single
	// thumbnails at 2 s (frame 50) and 50% (5 s, frame 125).
	wantFrames := map[string]int{"thumbnails-0/thumb_0001.jpg": 0, "thumbnails-0/thumb_0002.jpg": 100,
		"thumbnails-0/thumb_0003.jpg": 200, "thumbnail-1.jpg": 50, "thumbnail-2.jpg": 125}
	seen := map[string]bool{}
	for _, im := range st.Images {
		file := fileOf(t, im.URL)
		if !strings.HasPrefix(file, out+"/") {
			t.Errorf("%s: %s is not in -out %s", im.Tag, file, out)
		}
		rel, _ := filepath.Rel(out, file)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: %v", im.Tag, err)
			continue
		}
		seen[rel] = true
		if im.Kind == "vtt" {
			if !strings.HasPrefix(string(b), "WEBVTT") || !strings.Contains(string(b), "thumb_0003.jpg") {
				t.Errorf("%s is not the series' VTT:\n%s", rel, b)
			}
			continue
		}
		img, n := frameOf(t, b)
		if img.Bounds().Dx() != 320 || img.Bounds().Dy() != 180 {
			t.Errorf("%s is %v, want 320x180", rel, img.Bounds().Size())
		}
		if want, ok := wantFrames[rel]; !ok || n != want {
			t.Errorf("%s shows frame %d, want %d (known: %v)", rel, n, want, ok)
		}
	}
	for rel := range wantFrames {
		if !seen[rel] {
			t.Errorf("%s missing from the status", rel)
		}
	}
	if !seen["thumbnails-0/thumbnails.vtt"] {
		t.Error("the series' VTT is missing")
	}
}

// TestRunQueryToS3 runs a query from stdin whose outputs go to a bucket
// on a real S3 server, and one output kept in -out.
func TestRunQueryToS3(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "thumbs")
	clip, err := filepath.Abs(sampleClip)
	if err != nil {
		t.Fatal(err)
	}
	query := `{"query": {"source": "file://` + clip + `", "format": [
		{"output": "thumbnails", "interval": 5, "width": 160, "image_format": "png",
		 "destination": {"url": "` + s3.URL("thumbs", "run/series/") + `", "key": "` + s3.AccessKey + `", "secret": "` + s3.Secret + `"}},
		{"output": "thumbnail", "start_time": 3, "image_format": "webp",
		 "destination": {"url": "` + s3.URL("thumbs", "run/poster.webp") + `", "key": "` + s3.AccessKey + `", "secret": "` + s3.Secret + `"}},
		{"output": "thumbnail", "time": 0.9, "width": 64}]}}`
	out := t.TempDir()
	code, stdout, stderr := thumbdRun(t, map[string]string{"THUMBD_S3_HTTP_HOSTS": s3test.Host}, query,
		"-allow-private", "-progress", "none", "-out", out, "-")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr, stdout)
	}
	if stderr != "" {
		t.Errorf("-progress none, yet stderr says: %s", stderr)
	}
	st := decodeRunStatus(t, stdout)
	keys := s3.ListKeys(t, "thumbs", "run/")
	for _, want := range []string{"run/series/thumb_0001.png", "run/series/thumb_0002.png", "run/series/thumbnails.vtt", "run/poster.webp"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("object %s not in the bucket (have %q)", want, keys)
		}
	}
	if _, n := frameOf(t, s3.GetObject(t, "thumbs", "run/series/thumb_0002.png")); n != 125 {
		t.Errorf("run/series/thumb_0002.png shows frame %d, want 125 (5 s)", n)
	}
	if _, n := frameOf(t, s3.GetObject(t, "thumbs", "run/poster.webp")); n != 75 {
		t.Errorf("run/poster.webp shows frame %d, want 75 (3 s)", n)
	}
	var s3Entries, local int
	for _, im := range st.Images {
		switch im.Storage.Type {
		case "local":
			local++
			b, err := os.ReadFile(fileOf(t, im.URL))
			if err != nil {
				t.Fatal(err)
			}
			if img, n := frameOf(t, b); img.Bounds().Dx() != 64 || n != 225 {
				t.Errorf("kept thumbnail: %v, frame %d; want 64 px wide, frame 225 (90%% of 10 s)", img.Bounds().Size(), n)
			}
		default:
			s3Entries++
			if im.Storage.Bucket != "thumbs" {
				t.Errorf("%s: bucket %q", im.Tag, im.Storage.Bucket)
			}
		}
	}
	if s3Entries != 4 || local != 1 {
		t.Errorf("status has %d S3 and %d kept entries, want 4 and 1", s3Entries, local)
	}
}

// TestRunTaskError: a source that is not a video ends the task in error:
// exit 1, and the status on stdout says why.
func TestRunTaskError(t *testing.T) {
	notVideo := filepath.Join(t.TempDir(), "notes.mp4")
	if err := os.WriteFile(notVideo, bytes.Repeat([]byte("not a video\n"), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := thumbdRun(t, nil, "", "-source", notVideo, "-out", t.TempDir(), "-progress", "none")
	if code != exitTaskError {
		t.Fatalf("exit %d, want %d\nstderr: %s", code, exitTaskError, stderr)
	}
	st := decodeRunStatus(t, stdout)
	if st.Status != "error" || st.ErrorDescription == nil || !strings.Contains(*st.ErrorDescription, "not a video") {
		t.Errorf("status %q, error_description %v", st.Status, st.ErrorDescription)
	}
	if !strings.Contains(stderr, "ended in error") {
		t.Errorf("stderr does not say the task failed: %s", stderr)
	}
}

func TestRunProgressBar(t *testing.T) {
	code, _, stderr := thumbdRun(t, nil, "", "-source", sampleClip, "-times", "1", "-out", t.TempDir(), "-progress", "bar")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "100%") || !strings.Contains(stderr, "█") {
		t.Errorf("no full progress bar on stderr: %q", stderr)
	}
}

// TestRunUsage: what is refused before any task runs, with exit code 2
// and a message that names the problem.
func TestRunUsage(t *testing.T) {
	queryFile := filepath.Join(t.TempDir(), "q.json")
	if err := os.WriteFile(queryFile, []byte(`{"query": {"source": "`+sampleClip+`", "format": [{"output": "thumbnail", "width": -3}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"nothing", "", nil, "Usage"},
		{"query and flags", "", []string{"-source", sampleClip, "q.json"}, "not both"},
		{"two queries", "", []string{"a.json", "b.json"}, "one query file"},
		{"missing query file", "", []string{"/nonexistent/q.json"}, "no such file"},
		{"sprite without interval", "", []string{"-source", sampleClip, "-sprite"}, "-sprite needs -interval"},
		{"bad size", "", []string{"-source", sampleClip, "-size", "big"}, "-size"},
		{"bad time", "", []string{"-source", sampleClip, "-times", "soon"}, "-times"},
		{"bad percentage", "", []string{"-source", sampleClip, "-times", "150%"}, "percentage"},
		{"missing source file", "", []string{"-source", "/nonexistent/video.mp4"}, "no such file"},
		{"source is a directory", "", []string{"-source", "../../testdata"}, "directory"},
		{"invalid field", "", []string{queryFile}, "format[0].width"},
		{"not JSON", "{", []string{"-"}, "query"},
		{"unknown output", `{"query": {"source": "` + sampleClip + `", "format": [{"output": "hls"}]}}`, []string{"-"}, "hls"},
		{"bad setting", "", []string{"-source", sampleClip}, "THUMBD_WORKERS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			if tc.name == "bad setting" {
				vars["THUMBD_WORKERS"] = "lots"
			}
			code, stdout, stderr := thumbdRun(t, vars, tc.stdin, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
			if len(stdout) != 0 {
				t.Errorf("stdout is not empty: %s", stdout)
			}
		})
	}
}

func TestFlagQuery(t *testing.T) {
	tests := []struct {
		name string
		f    runFlags
		want string
	}{
		{"default: one thumbnail at the start", runFlags{source: "v.mp4"},
			`{"query":{"format":[{"output":"thumbnail"}],"source":"v.mp4"}}`},
		{"series as a sprite", runFlags{source: "v.mp4", interval: "10", sprite: true, size: "160", format: "jpg"},
			`{"query":{"format":[{"image_format":"jpg","interval":"10","output":"thumbnails","sprite":1,"width":"160"}],"source":"v.mp4"}}`},
		{"times", runFlags{source: "v.mp4", times: "1.5, 25%", size: "320x180"},
			`{"query":{"format":[{"output":"thumbnail","size":"320x180","start_time":"1.5","user_tag":"1.5"},{"output":"thumbnail","size":"320x180","time":"0.25","user_tag":"25%"}],"source":"v.mp4"}}`},
	}
	for _, tc := range tests {
		got, err := flagQuery(tc.f)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tc.name, got, err, tc.want)
		}
	}
}
