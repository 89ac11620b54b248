package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
)

func TestDecodeAccuracy(t *testing.T) {
	tests := []struct {
		name    string
		field   string // the accuracy member as JSON, or "" for none
		want    ffmpeg.Accuracy
		wantErr string
	}{
		{name: "absent: the server's default", want: ""},
		{name: "exact", field: `"exact"`, want: ffmpeg.AccuracyExact},
		{name: "keyframe, any case", field: `" KeyFrame "`, want: ffmpeg.AccuracyKeyframe},
		{name: "empty string: the server's default", field: `""`, want: ""},
		{name: "unknown", field: `"nearest"`, wantErr: `format[0].accuracy: must be "exact" or "keyframe", got "nearest"`},
		{name: "not a string", field: `{"mode": "exact"}`, wantErr: "format[0].accuracy: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := `{"output": "thumbnails", "interval": 5`
			if tt.field != "" {
				f += `, "accuracy": ` + tt.field
			}
			q := `{"query": {"source": "https://example.com/v.mp4", "format": [` + f + `}]}}`
			spec, err := decodeQuery(q)
			if tt.wantErr != "" {
				apiErr := toError(err)
				if err == nil || apiErr.Code != codeFieldRequired || !strings.Contains(apiErr.Message, tt.wantErr) {
					t.Fatalf("error %v (%+v), want code %d with %q", err, apiErr, codeFieldRequired, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := spec.Outputs[0].Accuracy; got != tt.want {
				t.Errorf("accuracy %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusReportsStrategy(t *testing.T) {
	snap := engine.Snapshot{State: engine.StateCompleted, Percent: 100, Images: []engine.Image{
		{Output: 0, Kind: engine.KindImage, Format: "jpg", Frames: []engine.Frame{
			{Requested: 1500 * time.Millisecond, Actual: 1520 * time.Millisecond, Strategy: ffmpeg.StrategySeek, Took: 250 * time.Millisecond}}},
		{Output: 1, Kind: engine.KindSprite, Format: "jpg", Frames: []engine.Frame{
			{Requested: 0, Actual: 0, Keyframe: true, Strategy: ffmpeg.StrategyKeyframe, Took: time.Second}}},
		{Output: 1, N: 1, Kind: engine.KindManifest, Format: "json"},
	}}
	b, err := json.Marshal(toStatusJSON("t", snap, "http://x"))
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
