package s3store_test

import (
	"errors"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

func TestKeptAgainstVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "kept")
	raw := "s3://" + url.PathEscape(srv.AccessKey) + ":" + url.PathEscape(srv.Secret) + "@" + srv.Endpoint + "/kept/farm/"
	k, err := s3store.NewKept(newS3(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(k.URL(), srv.Secret) || k.URL() != "s3://"+srv.Endpoint+"/kept/farm" {
		t.Fatalf("URL() = %q", k.URL())
	}
	big := strings.Repeat("0123456789", 100_000)
	files := map[string]string{
		"tok1/thumbnails-0/thumb_0001.png": "\x89PNG one",
		"tok1/thumbnails-0/thumb_0002.png": "\x89PNG two",
		"tok1/video.mp4":                   big,
		"tok2/thumb.jpg":                   "jpeg",
	}
	for name, body := range files {
		// A plain io.Reader is read into memory; a strings.Reader seeks.
		var r io.Reader = strings.NewReader(body)
		if name == "tok2/thumb.jpg" {
			r = io.MultiReader(r)
		}
		loc, err := k.Put(t.Context(), name, r, "image/png")
		if err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
		if loc != (storage.Location{Type: "local", Key: name}) {
			t.Errorf("Put %s: location %+v", name, loc)
		}
	}
	if got := srv.ListKeys(t, "kept", ""); !slices.Equal(got, []string{"farm/tok1/thumbnails-0/thumb_0001.png", "farm/tok1/thumbnails-0/thumb_0002.png", "farm/tok1/video.mp4", "farm/tok2/thumb.jpg"}) {
		t.Errorf("bucket holds %q", got)
	}

	f, err := k.OpenFile(t.Context(), "tok1/video.mp4")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if fi.Size() != int64(len(big)) || fi.Name() != "video.mp4" || fi.ModTime().IsZero() {
		t.Errorf("Stat: size %d name %q mtime %v", fi.Size(), fi.Name(), fi.ModTime())
	}
	// A range: seek, then read only that part.
	if _, err := f.Seek(500_003, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 7)
	if _, err := io.ReadFull(f, part); err != nil || string(part) != big[500_003:500_010] {
		t.Errorf("range read %q, %v; want %q", part, err, big[500_003:500_010])
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(f)
	if err != nil || string(all) != big {
		t.Errorf("whole read: %d bytes, %v", len(all), err)
	}
	f.Close()

	for _, name := range []string{"tok1/missing.png", "tok9/x.png"} {
		if _, err := k.OpenFile(t.Context(), name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenFile(%s) = %v, want fs.ErrNotExist", name, err)
		}
	}
	for _, name := range []string{"../x", "/abs", "a/../b", ""} {
		if _, err := k.OpenFile(t.Context(), name); !errors.Is(err, storage.ErrBadName) {
			t.Errorf("OpenFile(%q) = %v, want ErrBadName", name, err)
		}
	}

	// Retention removes a task's folder, and nothing else.
	if err := k.RemoveAll("tok1"); err != nil {
		t.Fatal(err)
	}
	if err := k.RemoveAll("tok-none"); err != nil {
		t.Errorf("RemoveAll of a missing folder: %v", err)
	}
	if got := srv.ListKeys(t, "kept", ""); !slices.Equal(got, []string{"farm/tok2/thumb.jpg"}) {
		t.Errorf("after RemoveAll, bucket holds %q", got)
	}
}
