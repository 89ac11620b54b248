package api

import (
	"strings"
	"testing"

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
