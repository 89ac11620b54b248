package taskrow

import (
	"slices"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// sample is a record with every stored field set.
func sample() engine.TaskRecord {
	f, n, st := 0.25, int64(42), 1500*time.Millisecond
	crf := 23
	return engine.TaskRecord{
		Token:   "0123456789abcdef0123456789abcdef",
		Owner:   "89abcdef01234567",
		Created: FromNanos(1700000000123456789),
		Ended:   FromNanos(1700000060987654321),
		Spec: &engine.Spec{
			Source:      "https://example.com/video.mp4",
			CallbackURL: "https://example.com/callback?x=1",
			Payload:     `{"order":7}`,
			Query:       `{"query": {"source": "https://example.com/video.mp4", "format": [{"output": "thumbnail"}]}}`,
			Warnings:    []engine.Warning{{Message: "Unknown field", Details: `format[0].widht is not a Qencode field and was ignored; did you mean "width"?`}},
			Outputs: []engine.Output{
				{Kind: "thumbnail", Time: &f, Width: 320, Height: 180, ResizeMode: "crop", Format: "webp", Quality: 80,
					Accuracy: "keyframe", UserTag: "poster", Times: []float64{0.25, 0.5}, Sizes: []engine.Size{{W: 320, H: 180}, {W: 64, H: 64}}, Manifest: true,
					Destinations: []storage.Destination{{URL: "s3://s3.example.com/bucket/a.webp",
						Key: "AKID", Secret: "SECRET", Permissions: "public-read", StorageClass: "STANDARD", CacheControl: "max-age=60"}}},
				{Kind: "thumbnails", FrameNumber: &n, Interval: 10 * time.Second, Resolution: 240, Format: "jpg", Sprite: true, Columns: 5, Rows: 4},
				{Kind: "mp4", StartTime: &st, Video: engine.VideoSettings{Duration: 5 * time.Second, FrameRate: engine.Rate{Num: 30000, Den: 1001},
					FrameRateLimit: engine.Rate{Num: 30, Den: 1}, KeyframeFrames: 60, KeyframeTime: 2 * time.Second, Bitrate: 1200, CRF: &crf,
					VideoCodec: "libx264", AudioCodec: "aac", AudioBitrate: 128, AudioRate: 48000, AudioChannels: 1, AudioMute: true,
					PixelFormat: "yuv420p", Profile: "high", Preset: "fast", Deinterlace: true, FileExtension: "m4v"}},
			},
		},
		Snap: engine.Snapshot{
			State:   "completed",
			Percent: 100,
			Error:   "",
			Images: []engine.Image{
				{Output: 0, N: 1, Kind: "image", Format: "webp", UserTag: "poster", Width: 320, Height: 180, Manifest: "0123456789abcdef0123456789abcdef/thumbnail-0.manifest.json",
					Location: storage.Location{URL: "s3://s3.example.com/bucket/a.webp", Type: "custom_s3", Scheme: "https", Host: "s3.example.com", Port: 9000, Bucket: "bucket", Key: "a.webp"},
					Frames:   []engine.Frame{{Requested: 2500 * time.Millisecond, Actual: 2502 * time.Millisecond, Keyframe: true, Strategy: "keyframe", Took: 80 * time.Millisecond}}},
				{Output: 1, N: 2, Kind: "sprite", Format: "jpg", Width: 1600, Height: 900,
					Location: storage.Location{Type: "local", Key: "0123456789abcdef0123456789abcdef/sprite-1.jpg"},
					Frames:   []engine.Frame{{Requested: 0, Actual: 40 * time.Millisecond, Strategy: "pass", Took: time.Second}}},
			},
			Videos: []engine.Video{{Output: 2, N: 1, Format: "mp4", UserTag: "clip", Size: 123456, Duration: 5 * time.Second, Bitrate: 1300,
				Location: storage.Location{Type: "local", Key: "0123456789abcdef0123456789abcdef/video-2-1.m4v"},
				Meta: engine.VideoMeta{Width: 320, Height: 180, FrameRate: engine.Rate{Num: 30000, Den: 1001}, VideoBitrate: 1100,
					DAR: "16:9", SAR: "1:1", VideoCodec: "h264", AudioCodec: "aac"}}},
			Warnings:   []engine.Warning{{Message: "Callback delivery error", Details: "Error sending callback to https://example.com/callback 500: no", Tag: "image-0-1"}},
			Duration:   12*time.Second + 345*time.Millisecond,
			SourceSize: 987654,
			Payload:    `{"order":7}`,
		},
	}
}

// sampleBefore is sample without the keys added after the first rows were
// written (Owner, Query, Warnings, Times, Sizes, Manifest): what
// testdata/row-unversioned.json holds.
func sampleBefore() engine.TaskRecord {
	r := sample()
	r.Owner = ""
	spec := *r.Spec
	spec.Query, spec.Warnings = "", nil
	spec.Outputs = slices.Clone(spec.Outputs)
	for i := range spec.Outputs {
		spec.Outputs[i].Times, spec.Outputs[i].Sizes, spec.Outputs[i].Manifest = nil, nil, false
	}
	r.Spec = &spec
	r.Snap.Images = slices.Clone(r.Snap.Images)
	for i := range r.Snap.Images {
		r.Snap.Images[i].Manifest = ""
	}
	return r
}
