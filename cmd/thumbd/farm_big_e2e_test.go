package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// TestFarmSmallTaskBehindThousandOutputs runs three thumbd processes on
// one PostgreSQL with the default spreading (parts of 8 outputs) and one
// worker each. A task of 1000 thumbnails started through A is spread into
// 125 parts; a one-thumbnail task started through B once those parts are
// queued completes while the big task is still encoding. The big task then
// completes once, with its 1000 images in output order showing the right
// frames, its parts made by all three processes, and each of its files
// once in the bucket.
func TestFarmSmallTaskBehindThousandOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 outputs on three processes")
	}
	f := newFarm(t)
	settings := []string{"THUMBD_MAX_OUTPUTS=1000"} // THUMBD_SPREAD_OUTPUTS left at its default
	procs := []*process{f.start(t, settings...), f.start(t, settings...), f.start(t, settings...)}
	a, b, c := procs[0], procs[1], procs[2]

	const outputs, perPart = 1000, 8 // perPart: THUMBD_SPREAD_OUTPUTS's default
	const parts = (outputs + perPart - 1) / perPart
	var formats []any
	var wantKeys []string
	for i := range outputs {
		formats = append(formats, map[string]any{"output": "thumbnail", "time": fmt.Sprintf("%.4f", (float64(i)+0.5)/outputs), "width": 64 + 8*(i%13)})
		wantKeys = append(wantKeys, fmt.Sprintf("files/%%s/thumbnail-%d.png", i), fmt.Sprintf("files/%%s/thumbnail-%d.manifest.json", i))
	}

	rcv := newHookReceiver(t, http.StatusOK)
	began := time.Now()
	big := startTask(t, a.base, map[string]any{"source": f.src, "format": formats, "callback_url": rcv.url}, "")
	waitParts(t, f.pool, big, parts)
	t.Logf("%d parts queued %v after the start", parts, time.Since(began).Round(10*time.Millisecond))

	// The small task does not wait behind the big task's parts: it
	// completes while the big task is still encoding, most of its parts
	// still to be made.
	smallBegan := time.Now()
	small := startTask(t, b.base, map[string]any{"source": f.src, "format": []any{map[string]any{"output": "thumbnail", "time": "0.5", "width": 160}}}, "")
	sst := waitStatus(t, b.base, small, 60*time.Second, "completed", "error")
	smallTook := time.Since(smallBegan)
	checkKeptImages(t, sst, 1)
	bigThen, _ := status(t, c.base, big)
	var partsDone int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM thumbd_part WHERE task = $1`, big).Scan(&partsDone); err != nil {
		t.Fatal(err)
	}
	t.Logf("the small task completed in %v, with the big one %s at %.0f%%, %d of its %d parts done", smallTook.Round(10*time.Millisecond), bigThen.Status, bigThen.Percent, partsDone, parts)
	if bigThen.Status != "encoding" || partsDone >= parts/2 {
		t.Errorf("the big task was %s with %d of its %d parts done when the small one had completed, want encoding with most parts to go: the small task waited behind it", bigThen.Status, partsDone, parts)
	}
	if smallTook > 30*time.Second {
		t.Errorf("the small task took %v behind the big one, want seconds", smallTook)
	}

	st := waitStatus(t, c.base, big, 15*time.Minute, "completed", "error")
	t.Logf("the task of %d outputs completed in %v", outputs, time.Since(began).Round(10*time.Millisecond))
	if st.Status != "completed" {
		desc := ""
		if st.ErrorDescription != nil {
			desc = *st.ErrorDescription
		}
		t.Fatalf("the big task ended %s: %s", st.Status, desc)
	}
	if len(st.Images) != outputs {
		t.Fatalf("%d images, want %d", len(st.Images), outputs)
	}
	for i, im := range st.Images {
		u, err := url.Parse(im.URL)
		if want := fmt.Sprintf("/storage/%s/thumbnail-%d.png", big, i); err != nil || u.Path != want {
			t.Errorf("image %d is %s, want …%s (output order)", i, im.URL, want)
		}
	}
	// Every image is served and shows the right frame (checkKeptImages also
	// checks that no tag comes twice).
	checkKeptImages(t, st, outputs)

	// Each file (image and manifest) once in the bucket, nothing else.
	for i := range wantKeys {
		wantKeys[i] = fmt.Sprintf(wantKeys[i], big)
	}
	slices.Sort(wantKeys)
	if keys := f.s3.ListKeys(t, "kept", "files/"+big+"/"); !slices.Equal(keys, wantKeys) {
		t.Errorf("the bucket holds %d files for the task (%d distinct), want the %d images and manifests, each once", len(keys), len(slices.Compact(slices.Clone(keys))), len(wantKeys))
	}

	// Every part was recorded once, and every process made some.
	f.partsMade(t, big, parts, procs...)

	// The small task's job ran ahead of most of the big task's parts (it
	// waited for a part under way, not behind the queued ones). A running
	// job's attempted_at is renewed every few seconds (its lease), which
	// can only make the small task look later.
	var after int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job p, river_job s
		WHERE p.kind = 'thumbd_part' AND p.args->>'token' = $1 AND s.kind = 'thumbd_task' AND s.args->>'token' = $2
		AND p.attempted_at > s.attempted_at`, big, small).Scan(&after); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of the %d parts started after the small task", after, parts)
	if after < parts/2 {
		t.Errorf("only %d of the %d parts started after the small task, want most", after, parts)
	}

	// The task ended once: one saved callback, and a second later it is
	// still completed with the same images.
	rcv.checkEvents(t, time.Second, "queued", "saved")
	if again, _ := status(t, a.base, big); again.Status != "completed" || len(again.Images) != outputs {
		t.Errorf("a second later the task is %s with %d images", again.Status, len(again.Images))
	}
}
