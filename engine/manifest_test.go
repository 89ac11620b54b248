package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

func TestManifestURL(t *testing.T) {
	tests := []struct {
		dest  string
		kind  OutputKind
		image string
		url   string
		name  string
	}{
		{"s3://h/b/thumbs/15_320x240.png", KindThumbnail, "thumbnail-0.png", "s3://h/b/thumbs/15_320x240.manifest.json", "thumbnail-0.manifest.json"},
		{"s3://h/b/thumbs/", KindThumbnail, "thumbnail-2.jpg", "s3://h/b/thumbs/thumbnail-2.manifest.json", "thumbnail-2.manifest.json"},
		{"s3://h/b/series", KindThumbnails, "thumb_0001.jpg", "s3://h/b/series/manifest.json", "manifest.json"},
		{"s3://h/b/series/", KindThumbnails, "sprite_0001.webp", "s3://h/b/series/manifest.json", "manifest.json"},
		{"s3://h/b/series/thumbnails.vtt", KindThumbnails, "thumb_0001.png", "s3://h/b/series/manifest.json", "manifest.json"},
	}
	for _, tt := range tests {
		if got := manifestURL(tt.dest, tt.kind, 0, tt.image); got != tt.url {
			t.Errorf("manifestURL(%q) = %q, want %q", tt.dest, got, tt.url)
		}
		if got := manifestName(tt.kind, tt.image); got != tt.name {
			t.Errorf("manifestName(%s, %q) = %q, want %q", tt.kind, tt.image, got, tt.name)
		}
	}
}

func TestAddManifest(t *testing.T) {
	dir := t.TempDir()
	s := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	p := &outputPlan{index: 3, accuracy: ffmpeg.AccuracyKeyframe, geo: Geometry{W: 160, H: 90}, took: s(1.25),
		out:    Output{Kind: KindThumbnails, Interval: s(2), Sprite: true, UserTag: "tag"},
		frames: []*plannedFrame{{file: filepath.Join(dir, "o3_f00001.png")}},
		files: []producedFile{
			{name: "sprite_0001.jpg", kind: KindSprite, width: 320, height: 180, frames: []Frame{
				{Requested: 0, Actual: 0, Keyframe: true, Strategy: ffmpeg.StrategyKeyframe, Took: s(0.5)},
				{Requested: s(2), Actual: s(2.002), Keyframe: true, Strategy: ffmpeg.StrategyKeyframe, Took: s(0.5)},
				{Requested: s(4), Actual: s(4.004), Keyframe: true, Strategy: ffmpeg.StrategyPass, Took: s(0.75)},
			}},
			{name: "thumbnails.vtt", kind: KindVTT},
		}}
	m := ffmpeg.Media{LastFrame: s(5.97), FrameDur: time.Second / 30}
	if err := p.addManifest(m, nil); err != nil {
		t.Fatal(err)
	}
	last := p.files[len(p.files)-1]
	if last.name != "manifest.json" || last.kind != KindManifest || last.format != "json" {
		t.Fatalf("manifest file %+v", last)
	}
	b, err := os.ReadFile(last.path)
	if err != nil {
		t.Fatal(err)
	}
	var got manifest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := manifest{Version: 1, Output: 3, Kind: "thumbnails", UserTag: "tag", Accuracy: "keyframe", Took: 1.25, Interval: 2,
		Source: manifestSource{Duration: 6.003333, FrameRate: 30},
		Frames: []manifestFrame{
			{File: "sprite_0001.jpg", XYWH: "0,0,160,90", RequestedTime: 0, Time: 0, Keyframe: true, Strategy: "keyframe", Took: 0.5},
			{File: "sprite_0001.jpg", XYWH: "160,0,160,90", RequestedTime: 2, Time: 2.002, Keyframe: true, Strategy: "keyframe", Took: 0.5},
			{File: "sprite_0001.jpg", XYWH: "0,90,160,90", RequestedTime: 4, Time: 4.004, Keyframe: true, Strategy: "pass", Took: 0.75},
		}}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("manifest\n got %s\nwant %s", gb, wb)
	}
}
