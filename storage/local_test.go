package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLocalPutOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", l.Dir(), dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("NewLocal did not create %s: %v", dir, err)
	}
	files := map[string]string{
		"tok1/thumb_0001.png": "png one",
		"tok1/thumb_0002.png": "png two",
		"tok1/sub/x.vtt":      "WEBVTT",
		"top.txt":             "top",
	}
	for name, body := range files {
		loc, err := l.Put(t.Context(), name, strings.NewReader(body), "image/png")
		if err != nil {
			t.Fatalf("Put(%s): %v", name, err)
		}
		if want := (Location{Type: "local", Key: name}); loc != want {
			t.Errorf("Put(%s) = %+v, want %+v", name, loc, want)
		}
	}
	// Overwriting replaces the content.
	if _, err := l.Put(t.Context(), "top.txt", strings.NewReader("new"), ""); err != nil {
		t.Fatal(err)
	}
	files["top.txt"] = "new"
	for name, body := range files {
		f, err := l.Open(name)
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if string(got) != body {
			t.Errorf("Open(%s) read %q, want %q", name, got, body)
		}
		onDisk, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || string(onDisk) != body {
			t.Errorf("file %s on disk = %q, %v", name, onDisk, err)
		}
	}
	if _, err := l.Open("tok1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(folder) error = %v, want fs.ErrNotExist", err)
	}
	if _, err := l.Open("tok1/missing.png"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want fs.ErrNotExist", err)
	}
	assertNoTemp(t, dir)

	if err := l.RemoveAll("tok1/"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tok1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after RemoveAll, tok1 still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "top.txt")); err != nil {
		t.Errorf("RemoveAll removed too much: %v", err)
	}
	if err := l.RemoveAll("never-was"); err != nil {
		t.Errorf("RemoveAll(missing) = %v, want nil", err)
	}
}

func TestLocalRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A symbolic link inside the directory that points outside it.
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("no"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	bad := []string{
		"", ".", "..", "../x", "a/../../x", "a/../b", "/etc/passwd", "/abs",
		"a//b", "a/./b", "a/", `a\..\b`, "a\x00b",
	}
	for _, name := range bad {
		if _, err := l.Put(t.Context(), name, strings.NewReader("x"), ""); !errors.Is(err, ErrBadName) {
			t.Errorf("Put(%q) error = %v, want ErrBadName", name, err)
		}
		if f, err := l.Open(name); !errors.Is(err, ErrBadName) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q) error = %v, want ErrBadName", name, err)
		}
	}
	for _, prefix := range []string{"", ".", "..", "../outside", "/", "/tmp"} {
		if err := l.RemoveAll(prefix); !errors.Is(err, ErrBadName) {
			t.Errorf("RemoveAll(%q) error = %v, want ErrBadName", prefix, err)
		}
	}
	// Through the link: refused by os.Root.
	if _, err := l.Put(t.Context(), "link/evil.txt", strings.NewReader("x"), ""); err == nil {
		t.Errorf("Put through a symlink out of the directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "evil.txt")); err == nil {
		t.Errorf("Put wrote outside the directory")
	}
	if f, err := l.Open("link/secret.txt"); err == nil {
		f.Close()
		t.Errorf("Open through a symlink out of the directory succeeded")
	}
	if entries, _ := os.ReadDir(base); len(entries) != 2 {
		t.Errorf("base dir has %d entries, want 2 (data, outside)", len(entries))
	}
}

func TestLocalPutFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that fails midway: no file, no temp file.
	r := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("boom")))
	if _, err := l.Put(t.Context(), "tok/a.png", r, ""); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Put with failing reader: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tok", "a.png")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial file exists: %v", err)
	}
	// A canceled context stops the copy and keeps the old file.
	if _, err := l.Put(t.Context(), "tok/b.png", strings.NewReader("old"), ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Put(ctx, "tok/b.png", strings.NewReader("new"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with canceled ctx: err = %v, want context.Canceled", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tok", "b.png")); string(b) != "old" {
		t.Errorf("b.png = %q after failed overwrite, want old", b)
	}
	assertNoTemp(t, dir)
}

// assertNoTemp fails if a temporary file is left under dir.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}
