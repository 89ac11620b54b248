package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrBadName is wrapped by Local's errors for a name that is not a clean
// relative slash path inside its directory.
var ErrBadName = errors.New("invalid file name")

// Local keeps files under one directory, named by slash paths such as
// "<task_token>/thumb_0001.png". Every operation goes through an os.Root, so
// neither ".." nor a symbolic link can reach outside the directory.
type Local struct {
	dir string
}

// NewLocal returns a Local keeping its files under dir, which it creates if
// need be.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: local directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create local directory: %w", err)
	}
	return &Local{dir: abs}, nil
}

// Dir returns the absolute path of the directory.
func (l *Local) Dir() string { return l.dir }

// checkName refuses names that are empty, absolute, unclean, hold "." or
// ".." elements or a backslash.
func checkName(name string) error {
	if name == "" || name == "." || !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("storage: %w %q: want a relative slash path without . or .. elements", ErrBadName, name)
	}
	return nil
}

// Put writes body to the file called name, creating its folders, and
// returns Location{Type: "local", Key: name}. The file appears whole or not
// at all: body goes to a temporary file in the same folder, which is renamed
// when complete. contentType is not stored; whoever serves the file derives
// it from the name. Put stops early when ctx ends.
func (l *Local) Put(ctx context.Context, name string, body io.Reader, contentType string) (Location, error) {
	if err := checkName(name); err != nil {
		return Location{}, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return Location{}, fmt.Errorf("storage: open local directory: %w", err)
	}
	defer root.Close()
	dir, base := path.Split(name)
	if dir != "" {
		if err := root.MkdirAll(strings.TrimSuffix(dir, "/"), 0o755); err != nil {
			return Location{}, fmt.Errorf("storage: put %s: %w", name, err)
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := dir + "." + base + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Location{}, fmt.Errorf("storage: put %s: %w", name, err)
	}
	_, err = io.Copy(f, ctxReader{ctx, body})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return Location{}, fmt.Errorf("storage: put %s: %w", name, err)
	}
	return Location{Type: "local", Key: name}, nil
}

// Open opens the regular file called name for reading. A folder is reported
// as not existing.
func (l *Local) Open(name string) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: open local directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f, nil
}

// RemoveAll deletes the file or folder called prefix, such as a task's
// folder, and everything in it. A missing one is no error.
func (l *Local) RemoveAll(prefix string) error {
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkName(prefix); err != nil {
		return err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return fmt.Errorf("storage: open local directory: %w", err)
	}
	defer root.Close()
	if err := root.RemoveAll(prefix); err != nil {
		return fmt.Errorf("storage: remove %s: %w", prefix, err)
	}
	return nil
}

// ctxReader reads from r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// OpenFile opens the regular file called name for reading, as Open does.
func (l *Local) OpenFile(_ context.Context, name string) (File, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}
