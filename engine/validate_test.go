package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/ffmpeg"
)

func TestValidateSource(t *testing.T) {
	tests := []struct {
		src  string
		want string // "" when valid
	}{
		{"https://example.com/video.mp4", ""},
		{"http://user:pass@example.com:8080/v.mp4?sig=1", ""},
		{"s3://s3.example.com/bucket/in/v.mp4", ""},
		{"s3://AKIAEXAMPLE:abc/def+ghi@s3.example.com/bucket/v.mp4", ""}, // a "/" in the secret, unencoded
		{"S3://s3.example.com/bucket/v.mp4", ""},
		{"tus:0123456789abcdef0123456789abcdef", ""},
		{"file:///srv/videos/v.mp4", ""},
		{"", "source: is required"},
		{"https:///v.mp4", "source: has no host"},
		{"s3://s3.example.com", "source: storage: s3 URL has no bucket"},
		{"tus:", "source: must be tus:<file id>"},
		{"file://", "source: must be file:///path/to/video"},
		{"ftp://example.com/v.mp4", `source: scheme "ftp" is not supported (use http, https, s3, tus or file)`},
		{"/srv/videos/v.mp4", `source: scheme "" is not supported`},
	}
	for _, tt := range tests {
		half := 0.5
		err := Validate(Spec{Source: tt.src, Outputs: []Output{{Kind: KindThumbnail, Time: &half}}})
		var ve *ValidationError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want nil", tt.src, err)
		case tt.want != "" && (!errors.As(err, &ve) || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("Validate(%q) = %v, want a ValidationError starting %q", tt.src, err, tt.want)
		}
	}
}

func TestSourceErrorNamesTheSource(t *testing.T) {
	src := fakeSource{url: "http://127.0.0.1:4000/abcd/v.mp4", name: "https://example.com/v.mp4"}
	err := explainRead(&ffmpeg.SourceError{Reason: "no video frame could be decoded at 5.000s", Err: errors.New("ffmpeg failed: http://127.0.0.1:4000/abcd/v.mp4: End of file")}, src)
	if want := "no video frame could be decoded at 5.000s (ffmpeg failed: https://example.com/v.mp4: End of file)"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	var se *sourceError
	if !errors.As(err, &se) {
		t.Errorf("%T does not unwrap to a *sourceError", err)
	}
	src.failure = errors.New("the source answered 404 Not Found for https://example.com/v.mp4")
	if err := explainRead(errors.New("ffprobe failed"), src); err.Error() != src.failure.Error() {
		t.Errorf("got %q, want the reader's own account %q", err, src.failure)
	}
}

type fakeSource struct {
	url, name string
	failure   error
}

func (f fakeSource) URL() string    { return f.url }
func (f fakeSource) Name() string   { return f.name }
func (f fakeSource) Size() int64    { return 0 }
func (f fakeSource) Failure() error { return f.failure }
func (f fakeSource) Close()         {}
