package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/frametest"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/vtt"
)

const clipFPS = 25

// startThumbd runs the real wiring of the binary on a free port, with the
// default configuration changed by mutate, and returns its base URL.
func startThumbd(t *testing.T, mutate func(*app.Config)) string {
	t.Helper()
	return runThumbd(t, testConfig(t, mutate)).base
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// serveTestdata serves ../../testdata over HTTP, with range requests.
func serveTestdata(t *testing.T) string {
	srv := httptest.NewServer(http.FileServer(http.Dir("../../testdata")))
	t.Cleanup(srv.Close)
	return srv.URL
}

// sdkResult is what e2e/node/run-query.js prints.
type sdkResult struct {
	TaskToken string          `json:"task_token"`
	Final     json.RawMessage `json:"final"`
	States    []string        `json:"states"`
	Percents  []float64       `json:"percents"`
}

// runSDK runs a query through Qencode's official Node SDK.
func runSDK(t *testing.T, endpoint string, query any, payload string) sdkResult {
	t.Helper()
	dir := "../../e2e/node"
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "qencode-api")); err != nil {
		t.Fatalf("the Node SDK is not installed: run scripts/deps.sh (%v)", err)
	}
	qf := filepath.Join(t.TempDir(), "query.json")
	b, _ := json.Marshal(query)
	if err := os.WriteFile(qf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "run-query.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "THUMBD_ENDPOINT="+endpoint, "THUMBD_API_KEY=e2e-test-key-0001", "QUERY_FILE="+qf, "PAYLOAD="+payload, "TIMEOUT_MS=90000")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node run-query.js: %v\nstderr: %s", err, stderr.String())
	}
	var res sdkResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("run-query.js printed %q: %v", stdout.String(), err)
	}
	return res
}

// wireStatus is the part of a status the test reads.
type wireStatus struct {
	Status           string  `json:"status"`
	Percent          float64 `json:"percent"`
	Error            int     `json:"error"`
	ErrorDescription *string `json:"error_description"`
	Duration         float64 `json:"duration"`
	SourceSize       int64   `json:"source_size"`
	Images           []struct {
		Tag     string `json:"tag"`
		UserTag string `json:"user_tag"`
		URL     string `json:"url"`
		Storage struct {
			Type, Host, Bucket, Key, Format string
			Port                            int
		} `json:"storage"`
		Kind          string   `json:"kind"`
		Width         int      `json:"width"`
		Height        int      `json:"height"`
		Time          *float64 `json:"time"`
		RequestedTime *float64 `json:"requested_time"`
		Keyframe      *bool    `json:"keyframe"`
		Strategy      *string  `json:"strategy"`
		Frames        []struct {
			RequestedTime float64 `json:"requested_time"`
			Time          float64 `json:"time"`
			Strategy      string  `json:"strategy"`
		} `json:"frames"`
		ManifestURL string `json:"manifest_url"`
	} `json:"images"`
	Videos   []any `json:"videos"`
	Warnings []struct {
		Message string  `json:"message"`
		Details string  `json:"details"`
		Tag     *string `json:"tag"`
	} `json:"warnings"`
}

// TestSeedQueryThroughNodeSDK runs the thumbnail part of the query in
// Qencode's thumbnail documentation, with an interval series and a sprite
// added, through the official Node SDK against thumbd, into a real S3
// server, and checks every object that lands there.
func TestSeedQueryThroughNodeSDK(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "qencode3")
	s3.CreateBucket(t, "mirror")
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)

	dest := func(bucket, key string) map[string]any {
		return map[string]any{"url": s3.URL(bucket, key), "key": s3.AccessKey, "secret": s3.Secret, "permissions": "public-read"}
	}
	query := map[string]any{
		"source": src,
		"format": []any{
			map[string]any{"output": "thumbnail", "time": "0.15", "width": "320", "height": "240",
				"destination": dest("qencode3", "test/thumb/15_320x240.png"), "user_tag": "15_320x240", "manifest": 1},
			map[string]any{"output": "thumbnail", "time": "0.50", "width": "320", "height": "240",
				"destination": []any{dest("qencode3", "test/thumb/50_320x240.png"), dest("mirror", "copy/50.png")}, "user_tag": "50_320x240"},
			map[string]any{"output": "thumbnails", "interval": "2", "width": 160, "image_format": "jpg", "quality": "90",
				"destination": dest("qencode3", "test/series/"), "manifest": "1"},
			map[string]any{"output": "thumbnails", "interval": 1, "sprite": 1, "columns": "4", "image_format": "webp",
				"destination": dest("qencode3", "test/sprite")},
			map[string]any{"output": "thumbnails", "interval": "1.5", "width": 160, "image_format": "jpg", "accuracy": "keyframe",
				"destination": dest("qencode3", "test/keyframes/"), "manifest": 1},
		},
	}
	res := runSDK(t, base, query, `{"job":"seed"}`)
	st := completedStatus(t, res)
	if !slices.IsSorted(res.Percents) {
		t.Errorf("percent went down: %v", res.Percents)
	}
	if st.Percent != 100 {
		t.Errorf("percent = %v, want 100", st.Percent)
	}
	if math.Abs(st.Duration-10) > 0.001 {
		t.Errorf("duration = %v, want 10", st.Duration)
	}
	if fi, _ := os.Stat("../../testdata/clip.mp4"); st.SourceSize != fi.Size() {
		t.Errorf("source_size = %d, want %d", st.SourceSize, fi.Size())
	}

	byTag := map[string]int{}
	for i, im := range st.Images {
		if _, dup := byTag[im.Tag]; dup {
			t.Errorf("tag %s appears twice", im.Tag)
		}
		byTag[im.Tag] = i
		if im.Storage.Type != "custom_s3" || im.Storage.Host != "127.0.0.1" || im.Storage.Port != s3.Port {
			t.Errorf("%s: storage = %+v", im.Tag, im.Storage)
		}
		if want := s3.URL(im.Storage.Bucket, im.Storage.Key); im.URL != want {
			t.Errorf("%s: url = %s, want %s", im.Tag, im.URL, want)
		}
	}

	// The two single thumbnails: 320x240 PNGs showing the first frame at
	// or after 15 % and 50 % of the 10 s clip, letterboxed (16:9 in 4:3).
	singles := []struct {
		tag, bucket, key, userTag string
		at                        float64
	}{
		{"image-0-0", "qencode3", "test/thumb/15_320x240.png", "15_320x240", 1.5},
		{"image-1-0", "qencode3", "test/thumb/50_320x240.png", "50_320x240", 5.0},
		{"image-1-1", "mirror", "copy/50.png", "50_320x240", 5.0},
	}
	for _, c := range singles {
		i, ok := byTag[c.tag]
		if !ok {
			t.Errorf("no image %s in %+v", c.tag, st.Images)
			continue
		}
		im := st.Images[i]
		if im.Storage.Bucket != c.bucket || im.Storage.Key != c.key || im.UserTag != c.userTag {
			t.Errorf("%s: bucket %s key %s user_tag %s", c.tag, im.Storage.Bucket, im.Storage.Key, im.UserTag)
		}
		img := decodeObject(t, s3, c.bucket, c.key, "png", 320, 240)
		if head := s3.HeadObject(t, c.bucket, c.key); head.ContentType != "image/png" {
			t.Errorf("%s: content type %q", c.key, head.ContentType)
		}
		checkFrame(t, c.key, img, image.Rect(0, 30, 320, 210), c.at, im.Time)
		if im.RequestedTime == nil || *im.RequestedTime != c.at {
			t.Errorf("%s: requested_time = %v, want %v", c.tag, im.RequestedTime, c.at)
		}
		// The clip is indexed: every frame comes from a planned run, none
		// from the fallbacks.
		if im.Strategy == nil || (*im.Strategy != "seek" && *im.Strategy != "pass") || im.Keyframe == nil || *im.Keyframe {
			t.Errorf("%s: strategy %v keyframe %v, want seek or pass, not a keyframe", c.tag, im.Strategy, im.Keyframe)
		}
	}
	// Outputs with "manifest": 1 have their manifest beside their images.
	man := readManifest(t, s3, "qencode3", "test/thumb/15_320x240.manifest.json")
	if man.Accuracy != "exact" || len(man.Frames) != 1 || man.Frames[0].File != "thumbnail-0.png" || man.Frames[0].RequestedTime != 1.5 {
		t.Errorf("thumbnail manifest %+v", man)
	}

	// The jpg series: one image every 2 s, 160x90, and a VTT beside them.
	series := []string{}
	for _, im := range st.Images {
		if strings.HasPrefix(im.Tag, "image-2-") && im.Kind == "image" {
			series = append(series, im.Storage.Key)
			img := decodeObject(t, s3, "qencode3", im.Storage.Key, "jpeg", 160, 90)
			checkFrame(t, im.Storage.Key, img, image.Rect(0, 0, 160, 90), *im.RequestedTime, im.Time)
		}
	}
	wantSeries := []string{"test/series/thumb_0001.jpg", "test/series/thumb_0002.jpg", "test/series/thumb_0003.jpg", "test/series/thumb_0004.jpg", "test/series/thumb_0005.jpg"}
	if !slices.Equal(series, wantSeries) {
		t.Errorf("series keys = %v, want %v", series, wantSeries)
	}
	cues := readVTT(t, s3, "qencode3", "test/series/thumbnails.vtt", 10*time.Second, 2*time.Second)
	for i, c := range cues {
		if want := fmt.Sprintf("thumb_%04d.jpg", i+1); c.Text != want {
			t.Errorf("cue %d text %q, want %q", i, c.Text, want)
		}
	}
	// The series' manifest says, for each image, what its picture shows.
	man = readManifest(t, s3, "qencode3", "test/series/manifest.json")
	if man.Kind != "thumbnails" || man.Interval != 2 || !man.Source.Indexed || len(man.Frames) != len(wantSeries) {
		t.Errorf("series manifest %+v", man)
	}
	for i, f := range man.Frames {
		img := decodeObject(t, s3, "qencode3", "test/series/"+f.File, "jpeg", 160, 90)
		checkFrame(t, "manifest "+f.File, img, image.Rect(0, 0, 160, 90), f.RequestedTime, &f.Time)
		// The clip has a keyframe every 2 s: every image of this series is one.
		if f.File != fmt.Sprintf("thumb_%04d.jpg", i+1) || f.RequestedTime != float64(2*i) || !f.Keyframe || f.Strategy == "" {
			t.Errorf("manifest frame %d: %+v", i, f)
		}
	}

	// keyframe accuracy: each image is the keyframe nearest its time (the
	// clip has one every 2 s; a tie goes to the later one).
	wantKeys := []int{0, 50, 100, 100, 150, 200, 200}
	man = readManifest(t, s3, "qencode3", "test/keyframes/manifest.json")
	if man.Accuracy != "keyframe" || len(man.Frames) != len(wantKeys) {
		t.Fatalf("keyframe manifest %+v", man)
	}
	for i, f := range man.Frames {
		img := decodeObject(t, s3, "qencode3", "test/keyframes/"+f.File, "jpeg", 160, 90)
		n, err := frametest.ClipBand(image.Rect(0, 0, 160, 90)).FrameNumber(img)
		if err != nil {
			t.Fatal(err)
		}
		// Strategy: decoded alone, or in the pass that the other outputs'
		// frames of the same GOP share.
		if n != wantKeys[i] || !f.Keyframe || math.Abs(f.Time-float64(n)/clipFPS) > 0.0015 || (f.Strategy != "keyframe" && f.Strategy != "pass") {
			t.Errorf("keyframe image %d shows frame %d, want %d; manifest %+v", i, n, wantKeys[i], f)
		}
	}

	// The sprite: 10 tiles of 160x90 (the default tile width) in a 4-column
	// sheet; each cue's #xywh shows the frame at its start time.
	cues = readVTT(t, s3, "qencode3", "test/sprite/thumbnails.vtt", 10*time.Second, time.Second)
	sheet := decodeObject(t, s3, "qencode3", "test/sprite/sprite_0001.webp", "webp", 640, 270)
	for i, c := range cues {
		var x, y, w, h int
		if _, err := fmt.Sscanf(c.Text, "sprite_0001.webp#xywh=%d,%d,%d,%d", &x, &y, &w, &h); err != nil {
			t.Fatalf("cue %d text %q: %v", i, c.Text, err)
		}
		if w != 160 || h != 90 || x != (i%4)*160 || y != (i/4)*90 {
			t.Errorf("cue %d: xywh %d,%d,%d,%d", i, x, y, w, h)
		}
		checkFrame(t, fmt.Sprintf("tile %d", i), sheet, image.Rect(x, y, x+w, y+h), c.Start.Seconds(), nil)
	}
	// The sprite's output did not ask for its manifest: thumbd keeps it
	// and links it from the status.
	var sprite string
	for _, im := range st.Images {
		if strings.HasPrefix(im.Tag, "image-3-") && (sprite == "" || sprite == im.ManifestURL) {
			sprite = im.ManifestURL
		} else if strings.HasPrefix(im.Tag, "image-3-") {
			t.Errorf("%s names manifest %q, not %q", im.Tag, im.ManifestURL, sprite)
		}
	}
	code, body := get(t, sprite)
	if code != http.StatusOK || json.Unmarshal(body, &man) != nil {
		t.Fatalf("GET %q: %d %s", sprite, code, body)
	}
	for i, f := range man.Frames {
		if want := fmt.Sprintf("%d,%d,160,90", (i%4)*160, (i/4)*90); f.File != "sprite_0001.webp" || f.XYWH != want || f.RequestedTime != float64(i) {
			t.Errorf("sprite manifest frame %d: %+v, want xywh %s", i, f, want)
		}
	}
	if keys := s3.ListKeys(t, "qencode3", "test/sprite/"); !slices.Equal(keys, []string{"test/sprite/sprite_0001.webp", "test/sprite/thumbnails.vtt"}) {
		t.Errorf("sprite folder holds %v", keys)
	}
}

// manifest is the part of manifest.json the test reads.
type manifest struct {
	Kind     string  `json:"kind"`
	Accuracy string  `json:"accuracy"`
	Interval float64 `json:"interval"`
	Source   struct {
		Indexed bool `json:"indexed"`
	} `json:"source"`
	Frames []struct {
		File          string  `json:"file"`
		XYWH          string  `json:"xywh"`
		RequestedTime float64 `json:"requested_time"`
		Time          float64 `json:"time"`
		Keyframe      bool    `json:"keyframe"`
		Strategy      string  `json:"strategy"`
	} `json:"frames"`
}

func readManifest(t *testing.T, s3 *s3test.Server, bucket, key string) manifest {
	t.Helper()
	if ct := s3.HeadObject(t, bucket, key).ContentType; ct != "application/json" {
		t.Errorf("%s: content type %q", key, ct)
	}
	var m manifest
	if err := json.Unmarshal(s3.GetObject(t, bucket, key), &m); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return m
}

func decodeObject(t *testing.T, s3 *s3test.Server, bucket, key, format string, w, h int) image.Image {
	t.Helper()
	b := s3.GetObject(t, bucket, key)
	img, f, err := frametest.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if f != format || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Fatalf("%s: %s %dx%d, want %s %dx%d", key, f, img.Bounds().Dx(), img.Bounds().Dy(), format, w, h)
	}
	return img
}

// checkFrame reads the frame number painted in the picture at rect and
// checks that it is the first frame at or after `at` seconds, and that the
// reported time (if any) is that frame's.
func checkFrame(t *testing.T, name string, img image.Image, rect image.Rectangle, at float64, reported *float64) {
	t.Helper()
	n, err := frametest.ClipBand(rect).FrameNumber(img)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	want := int(math.Ceil(at*clipFPS - 1e-6))
	if want > 249 {
		want = 249
	}
	if n != want {
		t.Errorf("%s shows frame %d, want %d (first frame at or after %.3fs)", name, n, want, at)
	}
	if reported != nil && math.Abs(*reported-float64(n)/clipFPS) > 0.0015 {
		t.Errorf("%s: reported time %.3f, but the picture is frame %d (%.3fs)", name, *reported, n, float64(n)/clipFPS)
	}
}

// readVTT fetches a VTT, parses it with a strict parser and checks that its
// cues tile [0, dur) in steps of interval.
func readVTT(t *testing.T, s3 *s3test.Server, bucket, key string, dur, interval time.Duration) []vtt.Cue {
	t.Helper()
	if ct := s3.HeadObject(t, bucket, key).ContentType; !strings.HasPrefix(ct, "text/vtt") {
		t.Errorf("%s: content type %q", key, ct)
	}
	cues, err := vtt.Parse(bytes.NewReader(s3.GetObject(t, bucket, key)))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	want := int((dur + interval - 1) / interval)
	if len(cues) != want {
		t.Fatalf("%s: %d cues, want %d", key, len(cues), want)
	}
	for i, c := range cues {
		start := time.Duration(i) * interval
		end := min(start+interval, dur)
		if c.Start != start || c.End != end {
			t.Errorf("%s: cue %d is %v-%v, want %v-%v", key, i, c.Start, c.End, start, end)
		}
	}
	return cues
}

// TestFailedUploadEndsInError: an upload that cannot succeed ends the task
// in error with a description that names the destination and not the
// secret, through the same SDK flow.
func TestFailedUploadEndsInError(t *testing.T) {
	s3 := s3test.Start(t)
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	query := map[string]any{
		"source": src,
		"format": []any{map[string]any{"output": "thumbnail", "time": 0.5, "width": 64,
			"destination": map[string]any{"url": s3.URL("no-such-bucket", "a/b.png"), "key": s3.AccessKey, "secret": s3.Secret}}},
	}
	res := runSDK(t, base, query, "")
	var st wireStatus
	if err := json.Unmarshal(res.Final, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "error" || st.Error != 1 || st.ErrorDescription == nil {
		t.Fatalf("status %q error %d, want error 1", st.Status, st.Error)
	}
	desc := *st.ErrorDescription
	if want := s3.URL("no-such-bucket", "a/b.png"); !strings.Contains(desc, want) {
		t.Errorf("error_description %q does not name %s", desc, want)
	}
	if strings.Contains(desc, s3.Secret) || strings.Contains(desc, s3.AccessKey) {
		t.Errorf("error_description %q leaks credentials", desc)
	}
	if strings.Contains(string(res.Final), s3.Secret) {
		t.Errorf("status leaks the secret: %s", res.Final)
	}
}
