package main

import (
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/internal/frametest"
	"github.com/thumbd/thumbd/internal/s3test"
)

// seedQuery is the request printed on Qencode's "Generating Thumbnails"
// page, verbatim (testdata/qencode-seed-query.json at the repository root).
func seedQuery(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/qencode-seed-query.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const numberedFPS = 25

// makeNumberedClip writes a 640x360, 25 fps clip of the given length with a
// 440 Hz tone, painted like testdata/clip.mp4: the top 40 rows carry the
// frame number (modulo 256) in 8 black or white blocks.
func makeNumberedClip(t *testing.T, dir string, seconds int) string {
	t.Helper()
	chain := "drawbox=x=0:y=0:w=640:h=40:color=black:t=fill"
	for b := range 8 {
		chain += fmt.Sprintf(",drawbox=x=%d:y=0:w=80:h=40:color=white:t=fill:enable='bitand(n\\,%d)'", b*80, 1<<b)
	}
	path := filepath.Join(dir, "source.mp4")
	d := strconv.Itoa(seconds)
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=%d:duration=%s,%s", numberedFPS, d, chain),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration="+d,
		"-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "50", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k", "-shortest", "-movflags", "+faststart", path).CombinedOutput()
	if err != nil {
		t.Fatalf("making the source clip: %v\n%s", err, out)
	}
	return path
}

// serveDir serves a directory over HTTP, with range requests.
func serveDir(t *testing.T, dir string) string {
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// videoStatus is the part of a status with videos that the tests read.
type videoStatus struct {
	wireStatus
	Videos []struct {
		Tag     string  `json:"tag"`
		UserTag *string `json:"user_tag"`
		URL     string  `json:"url"`
		Storage struct {
			Type, Host, Bucket, Key, Format string
			Port                            int
		} `json:"storage"`
		Size     float64 `json:"size"`
		Bitrate  int     `json:"bitrate"`
		Duration float64 `json:"duration"`
		Meta     struct {
			Width, Height, Bitrate int
			Framerate, DAR, SAR    string
			VideoCodec             string `json:"video_codec"`
			AudioCodec             string `json:"audio_codec"`
		} `json:"meta"`
	} `json:"videos"`
	Warnings []struct{ Message, Details string } `json:"warnings"`
}

func finalStatus(t *testing.T, res sdkResult) videoStatus {
	t.Helper()
	var st videoStatus
	decodeCompleted(t, res, &st)
	if !slices.IsSorted(res.Percents) || st.Percent != 100 {
		t.Errorf("percents %v, final %v", res.Percents, st.Percent)
	}
	return st
}

// probed is what ffprobe says of a file.
type probed struct {
	Streams []struct {
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		RFrameRate string `json:"r_frame_rate"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
	Packets []struct {
		PTS   string `json:"pts_time"`
		Flags string `json:"flags"`
	} `json:"packets"`
}

// probe describes a file, with the packets of its video stream.
func probe(t *testing.T, path string) probed {
	t.Helper()
	var p probed
	for _, args := range [][]string{
		{"-v", "error", "-of", "json", "-show_entries", "stream=codec_type,codec_name,width,height,r_frame_rate,sample_rate,channels:format=duration", path},
		{"-v", "error", "-of", "json", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", path},
	} {
		out, err := exec.Command("ffprobe", args...).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", path, err)
		}
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p probed) stream(kind string) (codec string, w, h int, rate string) {
	for _, s := range p.Streams {
		if s.CodecType == kind {
			return s.CodecName, s.Width, s.Height, s.RFrameRate
		}
	}
	return "", 0, 0, ""
}

// keyframes returns the positions, in presentation order, of the video's
// key frames, and how many frames it has.
func (p probed) keyframes() ([]int, int) {
	pk := slices.Clone(p.Packets)
	sort.Slice(pk, func(i, j int) bool {
		a, _ := strconv.ParseFloat(pk[i].PTS, 64)
		b, _ := strconv.ParseFloat(pk[j].PTS, 64)
		return a < b
	})
	var keys []int
	for i, x := range pk {
		if strings.Contains(x.Flags, "K") {
			keys = append(keys, i)
		}
	}
	return keys, len(pk)
}

// frameAt decodes the frame of a video file at time at (seconds) into a
// PNG and returns it.
func frameAt(t *testing.T, video string, at float64) image.Image {
	t.Helper()
	png := filepath.Join(t.TempDir(), "frame.png")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", strconv.FormatFloat(at, 'f', 3, 64),
		"-i", video, "-frames:v", "1", png).CombinedOutput()
	if err != nil {
		t.Fatalf("decoding %s at %vs: %v\n%s", video, at, err, out)
	}
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := frametest.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// checkNumber reads the frame number in a picture of the numbered clip
// drawn at rect and compares it, modulo 256, with want, within tol.
func checkNumber(t *testing.T, name string, img image.Image, rect image.Rectangle, want, tol int) {
	t.Helper()
	n, err := frametest.ClipBand(rect).FrameNumber(img)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	d := (n - want%256 + 256) % 256
	if d > 128 {
		d -= 256
	}
	if d < -tol || d > tol {
		t.Errorf("%s shows frame %d (mod 256), want %d (mod 256 = %d) ± %d", name, n, want, want%256, tol)
	}
}

// TestSeedVideoQueryThroughNodeSDK runs the whole query of Qencode's
// thumbnail page, an mp4 beside two thumbnails, verbatim apart from its
// URLs and credentials, through the official Node SDK into a real S3
// server, and checks with ffprobe what lands there.
func TestSeedVideoQueryThroughNodeSDK(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "qencode3")
	dir := t.TempDir()
	makeNumberedClip(t, dir, 35) // the seed cuts 10 s to 30 s
	src := serveDir(t, dir) + "/source.mp4"
	base := startThumbd(t, nil)

	endpoint := strings.TrimPrefix(s3.URL("b", "k"), "s3://")
	endpoint = endpoint[:strings.Index(endpoint, "/")]
	q := strings.NewReplacer(
		"https://qa.qencode.com/static/test_mini.mp4", src,
		"s3://nyc3.digitaloceanspaces.com/", "s3://"+endpoint+"/",
		`"key":"abcde12345"`, `"key":`+strconv.Quote(s3.AccessKey),
		`"secret":"abcde12345"`, `"secret":`+strconv.Quote(s3.Secret),
	).Replace(seedQuery(t))
	var outer struct{ Query json.RawMessage }
	if err := json.Unmarshal([]byte(q), &outer); err != nil {
		t.Fatal(err)
	}
	res := runSDK(t, base, outer.Query, "")
	t.Logf("states %v, percents %v", res.States, res.Percents)
	st := finalStatus(t, res)
	during := 0
	for _, p := range res.Percents {
		if p > 5 && p < 90 {
			during++
		}
	}
	if during == 0 {
		t.Errorf("no percent between 5 and 90 was seen while encoding: %v", res.Percents)
	}
	if math.Abs(st.Duration-35) > 0.001 {
		t.Errorf("duration = %v, want 35", st.Duration)
	}

	// The status entry of the mp4.
	if len(st.Videos) != 1 {
		t.Fatalf("videos: %+v", st.Videos)
	}
	v := st.Videos[0]
	if v.Tag != "video-0-0" || v.UserTag != nil || v.URL != s3.URL("qencode3", "test/test_mini.mp4") ||
		v.Storage.Type != "custom_s3" || v.Storage.Bucket != "qencode3" || v.Storage.Key != "test/test_mini.mp4" || v.Storage.Format != "mp4" || v.Storage.Port != s3.Port {
		t.Errorf("video entry: %+v", v)
	}
	m := v.Meta
	if m.Width != 360 || m.Height != 240 || m.Framerate != "29.97" || m.DAR != "3:2" || m.SAR != "1:1" ||
		m.VideoCodec != "h264" || m.AudioCodec != "aac" || m.Bitrate <= 0 || v.Bitrate <= m.Bitrate {
		t.Errorf("video meta: %+v, bitrate %d", m, v.Bitrate)
	}
	if math.Abs(v.Duration-20) > 0.1 {
		t.Errorf("video duration = %v, want 20", v.Duration)
	}

	// The object itself, read back from the S3 server.
	body := s3.GetObject(t, "qencode3", "test/test_mini.mp4")
	if head := s3.HeadObject(t, "qencode3", "test/test_mini.mp4"); head.ContentType != "video/mp4" {
		t.Errorf("content type %q", head.ContentType)
	}
	if want := float64(len(body)) / (1 << 20); math.Abs(v.Size-want) > 1e-5 {
		t.Errorf("size = %v MB, the object has %v MB", v.Size, want)
	}
	file := filepath.Join(t.TempDir(), "test_mini.mp4")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	p := probe(t, file)
	vc, w, h, rate := p.stream("video")
	ac, _, _, _ := p.stream("audio")
	if vc != "h264" || ac != "aac" || w != 360 || h != 240 || rate != "30000/1001" {
		t.Errorf("ffprobe: video %s %dx%d at %s, audio %s; want h264 360x240 at 30000/1001, aac", vc, w, h, rate, ac)
	}
	if d, _ := strconv.ParseFloat(p.Format.Duration, 64); math.Abs(d-20) > 0.1 {
		t.Errorf("ffprobe: duration %v, want 20", d)
	}
	keys, frames := p.keyframes()
	if frames < 598 || frames > 601 {
		t.Errorf("%d frames, want about 600 (20 s at 29.97 fps)", frames)
	}
	var wantKeys []int
	for k := 0; k < frames; k += 25 {
		wantKeys = append(wantKeys, k)
	}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("key frames at %v, want every 25 frames: %v", keys, wantKeys)
	}
	// The clip starts at the source's 10 s (frame 250); 10 s into it is the
	// source's 20 s (frame 500). 640x360 in 360x240 is letterboxed:
	// 360x203 at y=18.
	pic := image.Rect(0, 18, 360, 221)
	checkNumber(t, "the mp4's first frame", frameAt(t, file, 0), pic, 10*numberedFPS, 0)
	checkNumber(t, "the mp4 at 10 s", frameAt(t, file, 10), pic, 20*numberedFPS, 1)

	// The two thumbnails: 15 % and 50 % of 35 s.
	for _, c := range []struct {
		key string
		at  float64
	}{{"test/thumb/15_320x240.png", 5.25}, {"test/thumb/50_320x240.png", 17.5}} {
		img := decodeObject(t, s3, "qencode3", c.key, "png", 320, 240)
		checkNumber(t, c.key, img, image.Rect(0, 30, 320, 210), int(math.Ceil(c.at*numberedFPS-1e-6)), 0)
	}
	if len(st.Images) != 2 || st.Images[0].Tag != "image-1-0" || st.Images[1].Tag != "image-2-0" {
		t.Errorf("images: %+v", st.Images)
	}
}

// TestWebMThroughNodeSDK makes VP9 and Opus webm files through the Node
// SDK: one fanned out to two S3 destinations, one kept and served by thumbd.
func TestWebMThroughNodeSDK(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "videos")
	dir := t.TempDir()
	makeNumberedClip(t, dir, 4)
	src := serveDir(t, dir) + "/source.mp4"
	base := startThumbd(t, nil)

	dest := func(key string) map[string]any {
		return map[string]any{"url": s3.URL("videos", key), "key": s3.AccessKey, "secret": s3.Secret}
	}
	query := map[string]any{
		"source": src,
		"format": []any{
			map[string]any{"output": "webm", "size": "320x180", "start_time": 1, "duration": "2", "keyframe": "1s",
				"video_codec_parameters": map[string]any{"preset": "ultrafast"}, "user_tag": "preview",
				"destination": []any{dest("a/preview.webm"), dest("b/preview")}},
			map[string]any{"output": "webm", "resize_mode": "crop", "width": 120, "height": 120,
				"quality": 40, "audio_channels_number": 1, "video_codec_parameters": map[string]any{"preset": "ultrafast"}},
		},
	}
	st := finalStatus(t, runSDK(t, base, query, ""))
	if len(st.Videos) != 3 {
		t.Fatalf("videos: %+v", st.Videos)
	}
	want := []struct {
		tag, key string
	}{{"video-0-0", "a/preview.webm"}, {"video-0-1", "b/preview"}}
	for i, w := range want {
		v := st.Videos[i]
		if v.Tag != w.tag || v.Storage.Key != w.key || v.UserTag == nil || *v.UserTag != "preview" || v.Storage.Format != "webm" {
			t.Errorf("video %d: %+v", i, v)
		}
		if ct := s3.HeadObject(t, "videos", w.key).ContentType; ct != "video/webm" {
			t.Errorf("%s: content type %q", w.key, ct)
		}
		file := filepath.Join(t.TempDir(), "v.webm")
		if err := os.WriteFile(file, s3.GetObject(t, "videos", w.key), 0o644); err != nil {
			t.Fatal(err)
		}
		p := probe(t, file)
		vc, width, height, rate := p.stream("video")
		ac, _, _, _ := p.stream("audio")
		keys, frames := p.keyframes()
		if vc != "vp9" || ac != "opus" || width != 320 || height != 180 || rate != "25/1" || frames != 50 || !slices.Equal(keys, []int{0, 25}) {
			t.Errorf("%s: %s %dx%d at %s, %d frames, key frames %v, audio %s", w.key, vc, width, height, rate, frames, keys, ac)
		}
		checkNumber(t, w.key+" first frame", frameAt(t, file, 0), image.Rect(0, 0, 320, 180), numberedFPS, 0)
	}

	// The third is kept by thumbd and served from its own storage.
	v := st.Videos[2]
	if v.Tag != "video-1-0" || v.Storage.Type != "local" || v.Meta.Width != 120 || v.Meta.Height != 120 || v.Meta.VideoCodec != "vp9" {
		t.Fatalf("kept video: %+v", v)
	}
	u, err := url.Parse(v.URL)
	if err != nil || !strings.HasPrefix(v.URL, base+"/storage/") || !strings.HasSuffix(u.Path, "/video-1.webm") {
		t.Fatalf("kept video url %q", v.URL)
	}
	resp, err := http.Get(v.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/webm" || math.Abs(float64(len(b))/(1<<20)-v.Size) > 1e-5 {
		t.Fatalf("GET %s: %d %q, %d bytes (status says %v MB)", v.URL, resp.StatusCode, resp.Header.Get("Content-Type"), len(b), v.Size)
	}
	file := filepath.Join(t.TempDir(), "kept.webm")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := probe(t, file)
	for _, s := range p.Streams {
		if s.CodecType == "audio" && (s.CodecName != "opus" || s.Channels != 1 || s.SampleRate != "48000") {
			t.Errorf("kept video audio: %+v", s)
		}
	}
}

// TestUnsupportedOptionsRefused posts queries with Qencode options thumbd
// does not have and checks that each is refused at start, by name, in
// Qencode's envelope.
func TestUnsupportedOptionsRefused(t *testing.T) {
	base := startThumbd(t, nil)
	post := func(method string, form url.Values) map[string]any {
		resp, err := http.PostForm(base+"/v1/"+method, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", method, resp.StatusCode, err)
		}
		return m
	}
	token := post("access_token", url.Values{"api_key": {"e2e-test-key-0001"}})["token"].(string)
	tests := []struct {
		format string
		msg    string
	}{
		{`{"output": "advanced_dash", "stream": [{"size": "1280x720"}]}`, `format[0].output: "advanced_dash" is not supported by thumbd`},
		{`{"output": "mp4", "cenc_drm": {"key": "00", "key_id": "00", "pssh": "AA=="}}`, "format[0].cenc_drm: is not supported by thumbd"},
		{`{"output": "mp4", "subtitles": {"sources": [{"source": "https://x/s.srt", "language": "en"}]}, "logo": {"source": "https://x/l.png"}}`,
			"format[0].subtitles: is not supported by thumbd; neither is logo"},
	}
	for _, tc := range tests {
		task := post("create_task", url.Values{"token": {token}})["task_token"].(string)
		got := post("start_encode2", url.Values{"task_token": {task},
			"query": {`{"query": {"source": "https://example.com/v.mp4", "format": [` + tc.format + `]}}`}})
		if got["error"] != 14.0 || !strings.HasPrefix(fmt.Sprint(got["message"]), tc.msg) {
			t.Errorf("%s: %v, want error 14 %q", tc.format, got, tc.msg)
		}
	}
}
