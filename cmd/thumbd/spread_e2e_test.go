package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestFarmSpreadsATask runs three thumbd processes on one PostgreSQL with
// THUMBD_SPREAD_OUTPUTS=1 (one worker each: sized for a 2-core machine).
// A task of many outputs started through A is spread into one part per
// output; the parts are made by all three processes (thumbd_part records
// which), the task completes once, with one status whose images are in
// output order and show the right frames, one saved callback, and each
// file once in the bucket. A one-thumbnail task started through A after
// the big task's parts were queued runs before the last of them starts.
func TestFarmSpreadsATask(t *testing.T) {
	f := newFarm(t)
	s3, src, pool := f.s3, f.src, f.pool
	settings := []string{"THUMBD_SPREAD_OUTPUTS=1", "THUMBD_MAX_OUTPUTS=200"}
	procs := []*process{f.start(t, settings...), f.start(t, settings...), f.start(t, settings...)}
	a := procs[0]

	// 47 single thumbnails at different times, then a series of five.
	const singles = 47
	var formats []any
	var wantPaths []string
	for i := range singles {
		formats = append(formats, map[string]any{"output": "thumbnail", "time": fmt.Sprintf("%.4f", (float64(i)+0.5)/singles), "width": 320})
		wantPaths = append(wantPaths, fmt.Sprintf("thumbnail-%d.png", i))
	}
	formats = append(formats, map[string]any{"output": "thumbnails", "interval": 2, "width": 160, "image_format": "jpg"})
	for i := 1; i <= 5; i++ {
		wantPaths = append(wantPaths, fmt.Sprintf("thumbnails-%d/thumb_%04d.jpg", singles, i))
	}
	wantPaths = append(wantPaths, fmt.Sprintf("thumbnails-%d/thumbnails.vtt", singles))
	outputs := len(formats)

	rcv := newHookReceiver(t, http.StatusOK)
	began := time.Now()
	big := startTask(t, a.base, map[string]any{"source": src, "format": formats, "callback_url": rcv.url}, "")
	waitParts(t, pool, big, outputs)

	small := startTask(t, a.base, map[string]any{"source": src, "format": []any{map[string]any{"output": "thumbnail", "time": "0.5", "width": 160}}}, "")
	smallBegan := time.Now()
	sst := waitStatus(t, a.base, small, 60*time.Second, "completed", "error")
	smallTook := time.Since(smallBegan)
	checkKeptImages(t, sst, 1)
	bigThen, _ := status(t, a.base, big)
	t.Logf("the small task completed in %v, started behind the big one (then %s, %.0f%%)", smallTook.Round(10*time.Millisecond), bigThen.Status, bigThen.Percent)

	st := waitStatus(t, procs[2].base, big, 180*time.Second, "completed", "error")
	t.Logf("the task of %d outputs completed in %v", outputs, time.Since(began).Round(10*time.Millisecond))
	checkKeptImages(t, st, singles+6)
	for i, im := range st.Images {
		u, err := url.Parse(im.URL)
		if err != nil || u.Path != "/storage/"+big+"/"+wantPaths[i] {
			t.Errorf("image %d is %s, want …/%s (output order)", i, im.URL, wantPaths[i])
		}
	}
	keys := s3.ListKeys(t, "kept", "files/"+big+"/")
	want := 2*singles + 7 // images, the VTT and every output's manifest
	if len(keys) != want || len(slices.Compact(slices.Clone(keys))) != want {
		t.Errorf("the bucket holds %d files for the task, want %d, each once", len(keys), want)
	}

	// Every part was recorded once, and every process made some.
	f.partsMade(t, big, outputs, procs...)

	// The small task's job started before the big task's last part did:
	// it did not wait behind all of them.
	var smallAt, lastPartAt time.Time
	if err := pool.QueryRow(context.Background(), `SELECT attempted_at FROM river_job WHERE kind = 'thumbd_task' AND args->>'token' = $1`, small).Scan(&smallAt); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT max(attempted_at) FROM river_job WHERE kind = 'thumbd_part' AND args->>'token' = $1`, big).Scan(&lastPartAt); err != nil {
		t.Fatal(err)
	}
	if !smallAt.Before(lastPartAt) {
		t.Errorf("the small task started at %v, after the big task's last part (%v)", smallAt, lastPartAt)
	}

	// One task's callbacks: queued, then saved, once.
	rcv.checkEvents(t, 500*time.Millisecond, "queued", "saved")

	// A part that fails (its destination bucket does not exist) ends the
	// task in error, once: one error and one saved callback.
	t.Run("failed part", func(t *testing.T) {
		rcv := newHookReceiver(t, http.StatusOK)
		var formats []any
		for i := range 6 {
			f := map[string]any{"output": "thumbnail", "time": fmt.Sprintf("0.%d", i+1), "width": 160}
			if i == 3 {
				f["destination"] = map[string]any{"url": s3.URL("no-such-bucket", "x.png"), "key": s3.AccessKey, "secret": s3.Secret}
			}
			formats = append(formats, f)
		}
		token := startTask(t, procs[1].base, map[string]any{"source": src, "format": formats, "callback_url": rcv.url}, "")
		st := waitStatus(t, a.base, token, 120*time.Second, "completed", "error")
		if st.Status != "error" || st.ErrorDescription == nil || !strings.Contains(*st.ErrorDescription, "no-such-bucket") {
			t.Errorf("task %s (%v), want error naming the bucket", st.Status, st.ErrorDescription)
		}
		// The other parts end meanwhile: they send nothing.
		rcv.checkEvents(t, 2*time.Second, "queued", "error", "saved")
	})
}

// waitParts waits until a task's n part jobs are queued.
func waitParts(t *testing.T, pool *pgxpool.Pool, token string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'thumbd_part' AND args->>'token' = $1`, token).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d part jobs queued, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
