package wire_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

func TestStatusReportsStrategy(t *testing.T) {
	snap := engine.Snapshot{State: engine.StateCompleted, Percent: 100, Images: []engine.Image{
		{Output: 0, Kind: engine.KindImage, Format: "jpg", Frames: []engine.Frame{
			{Requested: 1500 * time.Millisecond, Actual: 1520 * time.Millisecond, Strategy: ffmpeg.StrategySeek, Took: 250 * time.Millisecond}}},
		{Output: 1, Kind: engine.KindSprite, Format: "jpg", Frames: []engine.Frame{
			{Requested: 0, Actual: 0, Keyframe: true, Strategy: ffmpeg.StrategyKeyframe, Took: time.Second}}},
		{Output: 1, N: 1, Kind: engine.KindManifest, Format: "json"},
	}}
	b, err := json.Marshal(wire.TaskStatus(snap, "http://x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"kind":"image","time":1.52,"requested_time":1.5,"keyframe":false,"strategy":"seek","took":0.25`,
		`"frames":[{"requested_time":0,"time":0,"keyframe":true,"strategy":"keyframe","took":1}]`,
		`"tag":"image-1-1","profile":null,"user_tag":null,"url":"","storage":{"type":"","host":null,"port":null,"bucket":null,"key":"","format":"json"},"kind":"manifest"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status lacks %s\n%s", want, b)
		}
	}
}

func TestVideoStatusJSON(t *testing.T) {
	snap := engine.Snapshot{State: engine.StateCompleted, Percent: 100, Videos: []engine.Video{
		{Output: 0, N: 0, Format: "mp4", UserTag: "360p",
			Location: storage.Location{Type: "custom_s3", URL: "s3://127.0.0.1:7070/qencode3/test/test_mini.mp4", Host: "127.0.0.1", Port: 7070, Bucket: "qencode3", Key: "test/test_mini.mp4"},
			Size:     1 << 20, Duration: 20 * time.Second, Bitrate: 420,
			Meta: engine.VideoMeta{Width: 360, Height: 240, FrameRate: engine.Rate{Num: 30000, Den: 1001}, VideoBitrate: 350, DAR: "3:2", SAR: "1:1", VideoCodec: "h264", AudioCodec: "aac"}},
		{Output: 3, N: 1, Format: "webm", Location: storage.Location{Type: "local", Key: "tok/video-3.webm"}},
	}}
	b, err := json.Marshal(wire.TaskStatus(snap, "http://thumbd"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Videos []map[string]any `json:"videos"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Videos) != 2 {
		t.Fatalf("videos: %s", b)
	}
	v := got.Videos[0]
	meta, ok := v["meta"].(map[string]any)
	if !ok {
		t.Fatalf("meta is %T, want an object: %s", v["meta"], b)
	}
	wantMeta := map[string]any{"width": 360.0, "height": 240.0, "resolution_width": 360.0, "resolution_height": 240.0, "resolution": 240.0,
		"framerate": "29.97", "bitrate": 350.0, "dar": "3:2", "sar": "1:1", "video_codec": "h264", "audio_codec": "aac"}
	for k, w := range wantMeta {
		if meta[k] != w {
			t.Errorf("meta.%s = %#v, want %#v", k, meta[k], w)
		}
	}
	want := map[string]any{"tag": "video-0-0", "user_tag": "360p", "url": "s3://127.0.0.1:7070/qencode3/test/test_mini.mp4",
		"size": 1.0, "bitrate": 420.0, "duration": 20.0, "profile": nil}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %#v, want %#v", k, v[k], w)
		}
	}
	st := v["storage"].(map[string]any)
	if st["format"] != "mp4" || st["bucket"] != "qencode3" || st["key"] != "test/test_mini.mp4" || st["port"] != 7070.0 || st["type"] != "custom_s3" {
		t.Errorf("storage %v", st)
	}
	if v := got.Videos[1]; v["tag"] != "video-3-1" || v["url"] != "http://thumbd/storage/tok/video-3.webm" || v["user_tag"] != nil {
		t.Errorf("kept video: %v", v)
	}
	if b, _ := json.Marshal(wire.UnknownStatus("http://thumbd")); !strings.Contains(string(b), `"videos":[]`) {
		t.Errorf("unknown status: %s", b)
	}
}

func TestCallbackForm(t *testing.T) {
	snap := engine.Snapshot{State: engine.StateError, Error: "the source could not be read", Payload: "p=1&q=<2>",
		Warnings: []engine.Warning{{Message: "m", Details: "d"}}}
	tests := []struct {
		kind      engine.EventKind
		wantError bool
	}{
		{engine.EventQueued, false},
		{engine.EventError, true},
		{engine.EventSaved, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			ev := engine.Event{Token: "tok", Kind: tt.kind, Snap: snap, Spec: engine.Spec{Payload: "p=1&q=<2>"}}
			form, err := wire.CallbackForm(ev, "https://thumbs.example.com")
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{"task_token": "tok", "event": string(tt.kind), "callback_type": "task", "payload": "p=1&q=<2>"} {
				if got := form.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			// status is the object /v1/status returns, unescaped as it writes it.
			want, err := json.Marshal(wire.TaskStatus(snap, "https://thumbs.example.com"))
			if err != nil {
				t.Fatal(err)
			}
			var got, wantObj any
			if err := json.Unmarshal([]byte(form.Get("status")), &got); err != nil {
				t.Fatalf("status is not JSON: %v: %s", err, form.Get("status"))
			}
			json.Unmarshal(want, &wantObj)
			if !reflect.DeepEqual(got, wantObj) {
				t.Errorf("status %s, want %s", form.Get("status"), want)
			}
			if !strings.Contains(form.Get("status"), `"payload":"p=1&q=<2>"`) {
				t.Errorf("status escapes HTML: %s", form.Get("status"))
			}
			if tt.wantError {
				if form.Get("error_code") != "1" || form.Get("error_message") != snap.Error {
					t.Errorf("error_code %q error_message %q", form.Get("error_code"), form.Get("error_message"))
				}
			} else if form.Has("error_code") || form.Has("error_message") {
				t.Errorf("a %s event has error fields: %v", tt.kind, form)
			}
		})
	}
}
