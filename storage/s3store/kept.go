package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/thumbd/thumbd/storage"
)

// Kept keeps the files thumbd keeps itself (outputs without a destination)
// in one bucket, under a prefix, instead of the data directory, so that
// every thumbd instance sharing the bucket serves them. It has
// storage.Local's methods: Put, OpenFile and RemoveAll, with the same slash
// names ("<task_token>/thumb_0001.png"), and hands out the same "local"
// locations, which the API serves under /storage/.
type Kept struct {
	s      *Store
	base   string // s3://host[:port]/bucket[/prefix], without credentials and a trailing "/"
	key    string
	secret string
}

// removeTimeout bounds RemoveAll, which has no context of its own.
const removeTimeout = 2 * time.Minute

// NewKept returns a Kept on the bucket and prefix rawURL names
// (s3://[key:secret@]host[:port]/bucket[/prefix]); the credentials are the
// URL's, else the default AWS credential chain's.
func NewKept(s *Store, rawURL string) (*Kept, error) {
	u, err := storage.ParseS3URL(rawURL)
	if err != nil {
		return nil, err
	}
	base := "s3://" + u.HostPort() + "/" + u.Bucket
	if p := strings.Trim(u.Key, "/"); p != "" {
		base += "/" + p
	}
	return &Kept{s: s, base: base, key: u.AccessKey, secret: u.SecretKey}, nil
}

// URL returns the bucket and prefix, without credentials.
func (k *Kept) URL() string { return k.base }

func (k *Kept) objectURL(name string) string { return k.base + "/" + name }

func checkName(name string) error {
	if name == "" || name == "." || !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("storage: %w %q: want a relative slash path without . or .. elements", storage.ErrBadName, name)
	}
	return nil
}

// Put uploads body as the object for name and returns
// Location{Type: "local", Key: name}. A body that is not an io.ReadSeeker is
// read into memory first, so that a failed upload can be retried.
func (k *Kept) Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error) {
	if err := checkName(name); err != nil {
		return storage.Location{}, err
	}
	rs, ok := body.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(body)
		if err != nil {
			return storage.Location{}, fmt.Errorf("storage: put %s: %w", name, err)
		}
		rs = strings.NewReader(string(b))
	}
	size, err := rs.Seek(0, io.SeekEnd)
	if err != nil {
		return storage.Location{}, fmt.Errorf("storage: put %s: %w", name, err)
	}
	if _, err := k.s.Put(ctx, storage.Destination{URL: k.objectURL(name), Key: k.key, Secret: k.secret}, rs, size, contentType); err != nil {
		return storage.Location{}, err
	}
	return storage.Location{Type: "local", Key: name}, nil
}

// OpenFile opens the object for name for reading. Reads are streamed from
// the server, from the offset the last Seek chose, so that a range request
// reads only its range. A missing object is fs.ErrNotExist.
func (k *Kept) OpenFile(ctx context.Context, name string) (storage.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	info, err := k.s.Stat(ctx, k.objectURL(name), k.key, k.secret)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e.StatusCode == http.StatusNotFound || e.Code == "NoSuchKey" || e.Code == "NotFound") {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return nil, err
	}
	return &keptFile{k: k, ctx: ctx, name: name, info: info}, nil
}

// RemoveAll deletes every object under the folder called prefix, such as a
// task's folder. A missing folder is no error.
func (k *Kept) RemoveAll(prefix string) error {
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkName(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	t, err := k.s.target("delete", k.objectURL(prefix)+"/", k.key, k.secret)
	if err != nil {
		return err
	}
	client, err := k.s.client(ctx, t)
	if err != nil {
		return t.fail("delete", err)
	}
	for {
		var out *s3.ListObjectsV2Output
		err := k.s.do(ctx, t, "delete", func(retryer func(*s3.Options)) (err error) {
			out, err = client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(t.url.Bucket), Prefix: aws.String(t.url.Key)}, retryer)
			return err
		})
		if err != nil {
			return err
		}
		if len(out.Contents) == 0 {
			return nil
		}
		for _, o := range out.Contents {
			err := k.s.do(ctx, t, "delete", func(retryer func(*s3.Options)) error {
				_, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.url.Bucket), Key: o.Key}, retryer)
				return err
			})
			var nf *types.NoSuchKey
			if err != nil && !errors.As(err, &nf) {
				return err
			}
		}
	}
}

// keptFile is an object of a Kept opened for reading.
type keptFile struct {
	k    *Kept
	ctx  context.Context
	name string
	info ObjectInfo
	off  int64
	body io.ReadCloser // open from off; nil until the next Read
}

func (f *keptFile) Read(p []byte) (int, error) {
	if f.off >= f.info.Size {
		return 0, io.EOF
	}
	if f.body == nil {
		t, err := f.k.s.target("get", f.k.objectURL(f.name), f.k.key, f.k.secret)
		if err != nil {
			return 0, err
		}
		client, err := f.k.s.client(f.ctx, t)
		if err != nil {
			return 0, t.fail("get", err)
		}
		var out *s3.GetObjectOutput
		err = f.k.s.do(f.ctx, t, "get", func(retryer func(*s3.Options)) (err error) {
			out, err = client.GetObject(f.ctx, &s3.GetObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key),
				Range: aws.String(fmt.Sprintf("bytes=%d-", f.off))}, retryer)
			return err
		})
		if err != nil {
			return 0, err
		}
		f.body = out.Body
	}
	n, err := f.body.Read(p)
	f.off += int64(n)
	if err == io.EOF && f.off < f.info.Size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (f *keptFile) Seek(offset int64, whence int) (int64, error) {
	var off int64
	switch whence {
	case io.SeekStart:
		off = offset
	case io.SeekCurrent:
		off = f.off + offset
	case io.SeekEnd:
		off = f.info.Size + offset
	default:
		return 0, errors.New("storage: seek: bad whence")
	}
	if off < 0 {
		return 0, errors.New("storage: seek before the start")
	}
	if off != f.off && f.body != nil {
		f.body.Close()
		f.body = nil
	}
	f.off = off
	return off, nil
}

func (f *keptFile) Close() error {
	if f.body != nil {
		err := f.body.Close()
		f.body = nil
		return err
	}
	return nil
}

func (f *keptFile) Stat() (fs.FileInfo, error) { return keptInfo{f}, nil }

// keptInfo is a keptFile's fs.FileInfo.
type keptInfo struct{ f *keptFile }

func (i keptInfo) Name() string       { return path.Base(i.f.name) }
func (i keptInfo) Size() int64        { return i.f.info.Size }
func (i keptInfo) Mode() fs.FileMode  { return 0o444 }
func (i keptInfo) ModTime() time.Time { return i.f.info.LastModified }
func (i keptInfo) IsDir() bool        { return false }
func (i keptInfo) Sys() any           { return nil }
