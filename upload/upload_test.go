package upload

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
)

func TestSweepAndRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, BasePath: "/v1/upload_file/"})
	if err != nil {
		t.Fatal(err)
	}
	old, fresh, started := engine.NewToken(), engine.NewToken(), engine.NewToken()
	for _, task := range []string{old, fresh, started} {
		if err := os.MkdirAll(filepath.Join(dir, task), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, task, engine.NewToken()), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A folder that is not a task's is never touched.
	if err := os.MkdirAll(filepath.Join(dir, "keep-me"), 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-72 * time.Hour)
	for _, p := range []string{filepath.Join(dir, old), filepath.Join(dir, "keep-me")} {
		files, _ := os.ReadDir(p)
		for _, f := range files {
			os.Chtimes(filepath.Join(p, f.Name()), past, past)
		}
		os.Chtimes(p, past, past)
	}
	if err := s.Remove(started); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("../keep-me"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(context.Background(), 48*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 task removed", n, err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{fresh, "keep-me"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
