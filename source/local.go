package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// root is one directory file:// sources may be read from.
type root struct {
	dirs []string // the directory as configured and with links resolved
	r    *os.Root
}

func (r root) Close() { r.r.Close() }

func openRoot(dir string) (root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return root{}, fmt.Errorf("source directory %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return root{}, fmt.Errorf("source directory %s: %w", dir, err)
	}
	r, err := os.OpenRoot(real)
	if err != nil {
		return root{}, fmt.Errorf("source directory %s: %w", dir, err)
	}
	dirs := []string{abs}
	if real != abs {
		dirs = append(dirs, real)
	}
	return root{dirs: dirs, r: r}, nil
}

// openFile opens a file:// source. The path must lie under one of the
// source directories; ".." is refused outright, and the file is opened
// through os.Root, which refuses symbolic links that lead out of the
// directory. It returns the file and the URL as it may be shown.
func (g *Gateway) openFile(u *url.URL) (*os.File, string, error) {
	if len(g.roots) == 0 {
		return nil, "", errors.New("file:// sources are not enabled on this server (the operator lists the directories they may come from in THUMBD_SOURCE_DIRS)")
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, "", fmt.Errorf("file:// sources must name a local path, as file:///path/to/video.mp4, not host %q", u.Host)
	}
	p := u.Path
	shown := "file://" + p
	if !strings.HasPrefix(p, "/") {
		return nil, "", fmt.Errorf("a file:// source needs an absolute path, as file:///path/to/video.mp4")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return nil, "", fmt.Errorf("a file:// source must not contain \"..\": %s", shown)
		}
	}
	p = filepath.Clean(p)
	for _, r := range g.roots {
		for _, dir := range r.dirs {
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				continue
			}
			f, err := r.r.Open(rel)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, "", fmt.Errorf("the source file does not exist: %s", shown)
			case err != nil && strings.Contains(err.Error(), "escapes"):
				return nil, "", fmt.Errorf("the source path leads out of the directories sources may come from (through a symbolic link): %s", shown)
			case err != nil:
				return nil, "", fmt.Errorf("the source file cannot be opened: %s: %v", shown, errors.Unwrap(err))
			}
			fi, err := f.Stat()
			if err != nil || !fi.Mode().IsRegular() {
				f.Close()
				return nil, "", fmt.Errorf("the source is not a regular file: %s", shown)
			}
			return f, shown, nil
		}
	}
	return nil, "", fmt.Errorf("the source file is not in a directory sources may come from (THUMBD_SOURCE_DIRS): %s", shown)
}

// tusID returns the file id of a tus:<id> source.
func tusID(u *url.URL) (string, error) {
	id := u.Opaque
	if id == "" {
		id = strings.TrimPrefix(u.Path, "/")
	}
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\\.%?#") {
		return "", errors.New("must be tus:<file id>, the last part of the upload's URL")
	}
	return id, nil
}

// serveFile answers ffmpeg from a local file, ranges included.
func (e *entry) serveFile(w http.ResponseWriter, r *http.Request) {
	size := e.knownSize()
	// A SectionReader per request: ffmpeg processes read concurrently.
	rs := io.NewSectionReader(e.file, 0, size)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(&countingWriter{ResponseWriter: w, n: &e.read}, r, "", time.Time{}, rs)
}

// countingWriter counts the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n interface{ Add(int64) int64 }
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}
