package s3test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestServer(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Endpoint, "127.0.0.1:") || s.Port == 0 {
		t.Fatalf("Endpoint = %q, Port = %d", s.Endpoint, s.Port)
	}
	if got, want := s.URL("b", "k/x.png"), "s3://"+s.Endpoint+"/b/k/x.png"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	s.CreateBucket(t, "thumbs")

	puts := []struct {
		key, body, ctype string
		acl              types.ObjectCannedACL
	}{
		{"a/one.png", "one", "image/png", types.ObjectCannedACLPublicRead},
		{"a/two.jpg", "two!", "image/jpeg", ""},
		{"b/three.vtt", "WEBVTT", "text/vtt", types.ObjectCannedACLPrivate},
	}
	for _, p := range puts {
		_, err := s.Client().PutObject(t.Context(), &s3.PutObjectInput{
			Bucket:      aws.String("thumbs"),
			Key:         aws.String(p.key),
			Body:        strings.NewReader(p.body),
			ContentType: aws.String(p.ctype),
			ACL:         p.acl,
		})
		if err != nil {
			t.Fatalf("put %s (acl %q): %v", p.key, p.acl, err)
		}
	}
	for _, p := range puts {
		if got := s.GetObject(t, "thumbs", p.key); !bytes.Equal(got, []byte(p.body)) {
			t.Errorf("GetObject(%s) = %q, want %q", p.key, got, p.body)
		}
		h := s.HeadObject(t, "thumbs", p.key)
		if h.ContentType != p.ctype || h.ContentLength != int64(len(p.body)) {
			t.Errorf("HeadObject(%s) = %+v, want type %s, length %d", p.key, h, p.ctype, len(p.body))
		}
	}
	if got, want := s.ListKeys(t, "thumbs", "a/"), []string{"a/one.png", "a/two.jpg"}; !slices.Equal(got, want) {
		t.Errorf("ListKeys(a/) = %q, want %q", got, want)
	}
	if got := s.ListKeys(t, "thumbs", ""); len(got) != 3 {
		t.Errorf("ListKeys() = %q, want 3 keys", got)
	}

	// Unsigned requests are refused: the gateway does check credentials.
	resp, err := http.Get("http://" + s.Endpoint + "/thumbs/a/one.png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET: status %d, want 403", resp.StatusCode)
	}
}

func TestFindBinary(t *testing.T) {
	p, err := findBinary()
	if err != nil {
		t.Fatalf("findBinary: %v (install with %s)", err, installHint)
	}
	if !strings.HasSuffix(p, "versitygw") {
		t.Errorf("findBinary = %q", p)
	}
}
