package main

import (
	"bytes"
	"fmt"
	"image"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/internal/s3test"
)

// lineCounter counts the log lines that contain a string.
type lineCounter struct {
	mu   sync.Mutex
	want []byte
	n    int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += bytes.Count(p, c.want)
	c.mu.Unlock()
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestTwoInstancesShareOnePostgres starts two thumbd instances on one
// PostgreSQL database, starts every task through the first, and checks
// that both instances run tasks, that each task's images are right, and
// that the second instance reports the status of tasks started on the
// first.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "shared")
	src := serveTestdata(t) + "/clip.mp4"
	pg := func(c *app.Config) { c.Store, c.DatabaseURL, c.Workers = "postgres", dbURL, 1 }
	doneA := &lineCounter{want: []byte(`msg="task completed"`)}
	doneB := &lineCounter{want: []byte(`msg="task completed"`)}
	a := runThumbdLog(t, testConfig(t, pg), doneA)
	b := runThumbdLog(t, testConfig(t, pg), doneB)

	const n = 8
	type task struct {
		token, key string
		at         float64 // seconds into the 10 s clip
	}
	tasks := make([]task, n)
	for i := range tasks {
		at := float64(i + 1) // time is a fraction of the duration below 1
		key := fmt.Sprintf("pg/%d.png", i)
		query := map[string]any{
			"source": src,
			"format": []any{map[string]any{"output": "thumbnail", "time": fmt.Sprintf("%.1f", at/10), "width": 160, "image_format": "png",
				"destination": map[string]any{"url": s3.URL("shared", key), "key": s3.AccessKey, "secret": s3.Secret}}},
		}
		tasks[i] = task{token: startTask(t, a.base, query, ""), key: key, at: at}
	}
	for _, tk := range tasks {
		st := waitStatus(t, b.base, tk.token, 20*time.Second, "completed", "error")
		if st.Status != "completed" || len(st.Images) != 1 {
			t.Errorf("task %s: %s with %d images, want completed with 1", tk.token[:6], st.Status, len(st.Images))
			continue
		}
		if im := st.Images[0]; im.Storage.Bucket != "shared" || im.Storage.Key != tk.key {
			t.Errorf("task %s: stored at %s/%s, want shared/%s", tk.token[:6], im.Storage.Bucket, im.Storage.Key, tk.key)
		}
		img := decodeObject(t, s3, "shared", tk.key, "png", 160, 90)
		checkFrame(t, tk.key, img, image.Rect(0, 0, 160, 90), tk.at, st.Images[0].Time)
		// A reads the same status as B.
		if stA, _ := status(t, a.base, tk.token); stA.Status != st.Status || len(stA.Images) != len(st.Images) {
			t.Errorf("task %s: A says %s, B says %s", tk.token[:6], stA.Status, st.Status)
		}
	}
	ranA, ranB := doneA.count(), doneB.count()
	t.Logf("tasks completed: %d by A, %d by B", ranA, ranB)
	if ranA+ranB != n {
		t.Errorf("tasks completed: %d by A + %d by B, want %d in all (each once)", ranA, ranB, n)
	}
	if ranA == 0 || ranB == 0 {
		t.Errorf("tasks completed: %d by A, %d by B: want both instances to work", ranA, ranB)
	}
}
