// Package static holds the files thumbd carries in its binary and serves
// under /static/: test_mini.mp4, a six-second sample video (made by
// scripts/make-sample.sh) that the README's first example reads, so that
// it works with no network. A source on thumbd's own address under
// /static/ is read from here by the source gateway, never over the
// network.
package static

import (
	"embed"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed test_mini.mp4
var files embed.FS

// Prefix is the URL path the files are served under.
const Prefix = "/static/"

// Sample is the name of the sample video.
const Sample = "test_mini.mp4"

// FS returns the files, named without Prefix.
func FS() fs.FS { return files }

// File is an open static file: readable at any offset, as the source
// gateway and http.ServeContent need.
type File interface {
	fs.File
	io.ReaderAt
	io.Seeker
}

// Open opens the file that the URL path p names (Prefix included), or
// returns an error wrapping fs.ErrNotExist.
func Open(p string) (File, error) {
	name, ok := strings.CutPrefix(path.Clean("/"+p), Prefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	f, err := files.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	rf, ok := f.(File)
	if !ok {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.ErrUnsupported}
	}
	return rf, nil
}

// Handler serves the files at their full path (Prefix included), with
// range requests, for GET and HEAD.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		f, err := Open(r.URL.Path)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeContent(w, r, path.Base(r.URL.Path), time.Time{}, f)
	})
}
