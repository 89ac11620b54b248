package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/s3test"
)

// completedStatus decodes the status run-query.js ended on and requires it
// completed.
func completedStatus(t *testing.T, res sdkResult) wireStatus {
	t.Helper()
	var st wireStatus
	decodeCompleted(t, res, &st)
	return st
}

// decodeCompleted decodes the status run-query.js ended on into st, and
// stops the test unless that status is completed without error.
func decodeCompleted(t *testing.T, res sdkResult, st any) {
	t.Helper()
	var head struct {
		Status           string  `json:"status"`
		Error            int     `json:"error"`
		ErrorDescription *string `json:"error_description"`
	}
	if err := json.Unmarshal(res.Final, &head); err != nil {
		t.Fatal(err)
	}
	if head.Status != "completed" || head.Error != 0 {
		desc := ""
		if head.ErrorDescription != nil {
			desc = *head.ErrorDescription
		}
		t.Fatalf("final status %q error %d: %s", head.Status, head.Error, desc)
	}
	if err := json.Unmarshal(res.Final, st); err != nil {
		t.Fatal(err)
	}
}

// The Node SDK's getTemplates() returns at once, with an empty list.
func TestNodeSDKGetTemplates(t *testing.T) {
	base := startThumbd(t, nil)
	cmd := exec.Command("node", "templates.js")
	cmd.Dir = "../../e2e/node"
	cmd.Env = append(os.Environ(), "THUMBD_ENDPOINT="+base, "THUMBD_API_KEY=e2e-test-key-0001", "TIMEOUT_MS=10000")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node templates.js: %v\nstderr: %s", err, stderr.String())
	}
	var out struct {
		Templates json.RawMessage `json:"templates"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || string(out.Templates) != "[]" {
		t.Errorf("getTemplates() returned %s (%v), want []", stdout.String(), err)
	}
	if strings.Contains(stderr.String(), "Retrying") {
		t.Errorf("the SDK retried: %s (%v)", stderr.String(), time.Since(began))
	}
}

// A metadata task through the Node SDK: the url of the last videos entry
// (what the PHP client's getMetadata() takes) serves ffprobe's JSON of
// the clip.
func TestNodeSDKMetadata(t *testing.T) {
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	res := runSDK(t, base, map[string]any{"source": src, "format": []any{map[string]any{"output": "metadata", "metadata_version": "4.1.5"}}}, "")
	st := completedStatus(t, res)
	var videos []struct {
		Tag     string `json:"tag"`
		URL     string `json:"url"`
		Storage struct {
			Format string `json:"format"`
		} `json:"storage"`
		Meta struct {
			Width, Height int
		} `json:"meta"`
	}
	raw, _ := json.Marshal(st.Videos)
	if err := json.Unmarshal(raw, &videos); err != nil || len(videos) != 1 {
		t.Fatalf("videos %s: %v", raw, err)
	}
	last := videos[len(videos)-1]
	if last.Tag != "video-0-0" || last.Storage.Format != "json" || last.Meta.Width != 640 || last.Meta.Height != 360 {
		t.Errorf("videos entry %+v", last)
	}
	if len(st.Images) != 0 || len(st.Warnings) != 0 {
		t.Errorf("images %v warnings %v", st.Images, st.Warnings)
	}
	resp, err := http.Get(last.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			Filename string `json:"filename"`
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", last.URL, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if len(info.Streams) == 0 || info.Streams[0].CodecType != "video" || info.Streams[0].Width != 640 || info.Streams[0].Height != 360 {
		t.Errorf("streams %+v, want the clip's 640x360 video first", info.Streams)
	}
	if info.Format.Filename != src || !strings.HasPrefix(info.Format.Duration, "10.") {
		t.Errorf("format %+v", info.Format)
	}
}

// {"output": "thumbnail", "interval": N}, as Qencode's tutorial writes it,
// makes the same series and WebVTT as "thumbnails".
func TestNodeSDKThumbnailInterval(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "tut")
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	dest := map[string]any{"url": s3.URL("tut", "interval"), "key": s3.AccessKey, "secret": s3.Secret}
	res := runSDK(t, base, map[string]any{"source": src, "format": []any{
		map[string]any{"output": "thumbnail", "interval": 3, "width": 160, "image_format": "jpg", "destination": dest},
	}}, "")
	st := completedStatus(t, res)
	cues := readVTT(t, s3, "tut", "interval/thumbnails.vtt", 10*time.Second, 3*time.Second)
	var keys []string
	for i, c := range cues {
		name := fmt.Sprintf("thumb_%04d.jpg", i+1)
		if c.Text != name {
			t.Errorf("cue %d text %q, want %q", i, c.Text, name)
		}
		img := decodeObject(t, s3, "tut", "interval/"+name, "jpeg", 160, 90)
		checkFrame(t, name, img, image.Rect(0, 0, 160, 90), c.Start.Seconds(), nil)
		keys = append(keys, "interval/"+name)
	}
	keys = append(keys, "interval/thumbnails.vtt")
	slices.Sort(keys)
	if got := s3.ListKeys(t, "tut", ""); !slices.Equal(got, keys) {
		t.Errorf("bucket holds %v, want %v", got, keys)
	}
	if len(st.Images) != len(keys) || st.Images[len(st.Images)-1].Kind != "vtt" {
		t.Errorf("%d images entries, want %d ending with the VTT", len(st.Images), len(keys))
	}
}

// Several times and sizes in one thumbnail output: one image per
// combination, each with its own status entry and a name that says which.
func TestNodeSDKTimesAndSizes(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "combo")
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	dest := map[string]any{"url": s3.URL("combo", "thumbs/poster.png"), "key": s3.AccessKey, "secret": s3.Secret}
	res := runSDK(t, base, map[string]any{"source": src, "format": []any{
		map[string]any{"output": "thumbnail", "time": []any{"0.1", "0.55"}, "size": "320x240,160x90", "destination": dest, "user_tag": "combo"},
		map[string]any{"output": "thumbnail", "time": "0.2,0.9", "width": 64}, // kept by thumbd
	}}, "")
	st := completedStatus(t, res)
	type shot struct {
		tag, key string
		at       float64
		w, h     int
		band     image.Rectangle
	}
	shots := []shot{
		{"image-0-0", "thumbs/poster_0.1_320x240.png", 1.0, 320, 240, image.Rect(0, 30, 320, 210)},
		{"image-0-1", "thumbs/poster_0.1_160x90.png", 1.0, 160, 90, image.Rect(0, 0, 160, 90)},
		{"image-0-2", "thumbs/poster_0.55_320x240.png", 5.5, 320, 240, image.Rect(0, 30, 320, 210)},
		{"image-0-3", "thumbs/poster_0.55_160x90.png", 5.5, 160, 90, image.Rect(0, 0, 160, 90)},
	}
	var keys []string
	for i, sh := range shots {
		im := st.Images[i]
		if im.Tag != sh.tag || im.Storage.Key != sh.key || im.UserTag != "combo" || im.Width != sh.w || im.Height != sh.h {
			t.Errorf("entry %d: %s %s %q %dx%d, want %s %s %dx%d", i, im.Tag, im.Storage.Key, im.UserTag, im.Width, im.Height, sh.tag, sh.key, sh.w, sh.h)
		}
		img := decodeObject(t, s3, "combo", sh.key, "png", sh.w, sh.h)
		checkFrame(t, sh.key, img, sh.band, sh.at, im.Time)
		keys = append(keys, sh.key)
	}
	slices.Sort(keys)
	if got := s3.ListKeys(t, "combo", ""); !slices.Equal(got, keys) {
		t.Errorf("bucket holds %v, want %v", got, keys)
	}
	// Kept files: thumbnail-<index>_<time>_<WxH>.<ext>, at the source's
	// proportions when only a width is given... one size: the name says the time.
	var kept []string
	for _, im := range st.Images[len(shots):] {
		kept = append(kept, im.URL[strings.LastIndex(im.URL, "/")+1:])
		code, body := get(t, im.URL)
		if code != 200 {
			t.Fatalf("GET %s: %d", im.URL, code)
		}
		img, _, err := image.Decode(bytes.NewReader(body))
		if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 36 {
			t.Fatalf("%s: %v %v", im.URL, err, img.Bounds())
		}
		checkFrame(t, im.URL, img, image.Rect(0, 0, 64, 36), *im.RequestedTime, im.Time)
	}
	if want := []string{"thumbnail-1_0.2.png", "thumbnail-1_0.9.png"}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if math.Abs(*st.Images[len(shots)+1].RequestedTime-9) > 1e-9 {
		t.Errorf("requested_time %v, want 9", *st.Images[len(shots)+1].RequestedTime)
	}
}

// A field that is not Qencode's gets a warning naming it and the field it
// was probably meant to be; the task still runs.
func TestNodeSDKTypoWarning(t *testing.T) {
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	res := runSDK(t, base, map[string]any{"source": src, "format": []any{map[string]any{"output": "thumbnail", "time": 0.5, "widht": 100}}}, "")
	st := completedStatus(t, res)
	if len(st.Warnings) != 1 || st.Warnings[0].Message != "Unknown field" ||
		st.Warnings[0].Details != `format[0].widht is not a Qencode field and was ignored; did you mean "width"?` {
		t.Errorf("warnings %+v", st.Warnings)
	}
	if len(st.Images) != 1 || st.Images[0].Width != 640 {
		t.Errorf("images %+v, want one at the source's width", st.Images)
	}
	// A Qencode field thumbd does not implement is refused by name.
	token := createTask(t, base)
	var reply struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
	}
	q, _ := json.Marshal(map[string]any{"query": map[string]any{"source": src, "format": []any{map[string]any{"output": "thumbnail", "rotate": 90}}}})
	if err := json.Unmarshal(postRaw(t, base, "/v1/start_encode2", url.Values{"task_token": {token}, "query": {string(q)}}), &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Error != 14 || !strings.Contains(reply.Message, "format[0].rotate") {
		t.Errorf("rotate: %+v", reply)
	}
}

// A destination holds exactly what Qencode would put there: the images and
// the VTT, no manifest; thumbd keeps the manifests and links them.
func TestNodeSDKBucketHoldsOnlyWhatWasAskedFor(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "exact")
	src := serveTestdata(t) + "/clip.mp4"
	base := startThumbd(t, nil)
	dest := func(key string) map[string]any {
		return map[string]any{"url": s3.URL("exact", key), "key": s3.AccessKey, "secret": s3.Secret}
	}
	res := runSDK(t, base, map[string]any{"source": src, "format": []any{
		map[string]any{"output": "thumbnail", "time": "0.5", "width": 320, "destination": dest("single/50.png")},
		map[string]any{"output": "thumbnails", "interval": 4, "width": 160, "image_format": "jpg", "destination": dest("series/")},
		map[string]any{"output": "thumbnails", "interval": 5, "sprite": 1, "destination": dest("sprite")},
		map[string]any{"output": "metadata", "destination": dest("meta/clip.json")},
	}}, "")
	st := completedStatus(t, res)
	want := []string{"meta/clip.json", "series/thumb_0001.jpg", "series/thumb_0002.jpg", "series/thumb_0003.jpg", "series/thumbnails.vtt",
		"single/50.png", "sprite/sprite_0001.png", "sprite/thumbnails.vtt"}
	if got := s3.ListKeys(t, "exact", ""); !slices.Equal(got, want) {
		t.Errorf("bucket holds\n%v\nwant\n%v", got, want)
	}
	if len(st.Warnings) != 0 {
		t.Errorf("warnings %+v", st.Warnings)
	}
	// Every image entry links its output's manifest, which thumbd serves.
	seen := map[string]bool{}
	for _, im := range st.Images {
		if im.ManifestURL == "" {
			t.Errorf("%s has no manifest_url", im.Tag)
			continue
		}
		if seen[im.ManifestURL] {
			continue
		}
		seen[im.ManifestURL] = true
		code, body := get(t, im.ManifestURL)
		var m manifest
		if code != 200 || json.Unmarshal(body, &m) != nil || len(m.Frames) == 0 {
			t.Errorf("GET %s: %d %s", im.ManifestURL, code, body)
		}
	}
	if len(seen) != 3 {
		t.Errorf("%d manifests linked, want 3: %v", len(seen), seen)
	}

	// THUMBD_UPLOAD_MANIFESTS puts them beside the images too.
	s3.CreateBucket(t, "withman")
	base = startThumbd(t, func(c *app.Config) { c.UploadManifests = true })
	d := map[string]any{"url": s3.URL("withman", "s/"), "key": s3.AccessKey, "secret": s3.Secret}
	completedStatus(t, runSDK(t, base, map[string]any{"source": src, "format": []any{
		map[string]any{"output": "thumbnails", "interval": 5, "width": 64, "destination": d}}}, ""))
	if got, want := s3.ListKeys(t, "withman", ""), []string{"s/manifest.json", "s/thumb_0001.png", "s/thumb_0002.png", "s/thumbnails.vtt"}; !slices.Equal(got, want) {
		t.Errorf("with THUMBD_UPLOAD_MANIFESTS the bucket holds %v, want %v", got, want)
	}
}
