package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/engine"
)

// TestFileSources checks that file:// sources are read only under the
// source directories: ".." and links that lead out are refused.
func TestFileSources(t *testing.T) {
	base := t.TempDir()
	videos := filepath.Join(base, "videos")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{videos, filepath.Join(videos, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(clip(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(videos, "clip.mp4"), filepath.Join(videos, "sub", "clip.mp4"), filepath.Join(outside, "secret.mp4")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(videos, "inside.mp4"):   "sub/clip.mp4",
		filepath.Join(videos, "escape.mp4"):   "../outside/secret.mp4",
		filepath.Join(videos, "absolute.mp4"): filepath.Join(outside, "secret.mp4"),
		filepath.Join(videos, "out"):          outside,
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	g := startGateway(t, Config{Dirs: []string{videos}})
	off := startGateway(t, Config{})

	tests := []struct {
		name string
		g    *Gateway
		src  string
		want string // "" when the source is accepted
	}{
		{name: "a file in the directory", g: g, src: "file://" + videos + "/clip.mp4"},
		{name: "a file in a subdirectory", g: g, src: "file://" + videos + "/sub/clip.mp4"},
		{name: "a link that stays inside", g: g, src: "file://" + videos + "/inside.mp4"},
		{name: "localhost as the host", g: g, src: "file://localhost" + videos + "/clip.mp4"},
		{name: "file:// is off by default", g: off, src: "file://" + videos + "/clip.mp4", want: "file:// sources are not enabled on this server"},
		{name: "dot-dot", g: g, src: "file://" + videos + "/../outside/secret.mp4", want: `must not contain ".."`},
		{name: "encoded dot-dot", g: g, src: "file://" + videos + "/%2e%2e/outside/secret.mp4", want: `must not contain ".."`},
		{name: "a relative link out", g: g, src: "file://" + videos + "/escape.mp4", want: "leads out of the directories"},
		{name: "an absolute link out", g: g, src: "file://" + videos + "/absolute.mp4", want: "leads out of the directories"},
		{name: "a directory link out", g: g, src: "file://" + videos + "/out/secret.mp4", want: "leads out of the directories"},
		{name: "a file elsewhere", g: g, src: "file://" + outside + "/secret.mp4", want: "is not in a directory sources may come from"},
		{name: "the directory's sibling", g: g, src: "file://" + videos + "-old/clip.mp4", want: "is not in a directory sources may come from"},
		{name: "system file", g: g, src: "file:///etc/passwd", want: "is not in a directory sources may come from"},
		{name: "missing", g: g, src: "file://" + videos + "/nope.mp4", want: "does not exist"},
		{name: "a directory", g: g, src: "file://" + videos + "/sub", want: "not a regular file"},
		{name: "another host", g: g, src: "file://fileserver" + videos + "/clip.mp4", want: "must name a local path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Check(context.Background(), "task", tt.src)
			_, openErr := tt.g.Open(context.Background(), "task", tt.src)
			for what, err := range map[string]error{"Check": err, "Open": openErr} {
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s: %v", what, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("%s = %v, want an error saying %q", what, err, tt.want)
				}
			}
		})
	}

	// And a task reads a file through the gateway to the end.
	snap := runTask(t, g, engine.Spec{Source: "file://" + videos + "/inside.mp4"}, 0)
	if snap.State != engine.StateCompleted || snap.SourceSize != int64(len(data)) {
		t.Fatalf("task ended %s (%s), source_size %d", snap.State, snap.Error, snap.SourceSize)
	}
}
