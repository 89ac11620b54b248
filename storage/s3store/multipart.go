package s3store

import (
	"bytes"
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxSinglePut is the largest body Put sends in one PutObject request
// (S3's limit is 5 GiB); a larger one is sent in parts.
var maxSinglePut int64 = 5 << 30

// Parts of a multipart Put: at least minPart bytes (S3's least is 5 MiB,
// but for the last part), and no more than maxParts of them.
var minPart int64 = 64 << 20

const maxParts = 10_000

// putParts uploads body, size bytes long, as the object in names, in
// parts, each retried as Put is; a failure aborts the upload so that the
// server drops the parts sent.
func (s *Store) putParts(ctx context.Context, t *target, client *s3.Client, in *s3.PutObjectInput, body io.ReadSeeker, size int64) error {
	var created *s3.CreateMultipartUploadOutput
	err := s.do(ctx, t, "put", func(retryer func(*s3.Options)) (err error) {
		created, err = client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: in.Bucket, Key: in.Key,
			ContentType: in.ContentType, ACL: in.ACL, StorageClass: in.StorageClass, CacheControl: in.CacheControl}, retryer)
		return err
	})
	if err != nil {
		return err
	}
	abort := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
		defer cancel()
		if _, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: created.UploadId}); err != nil {
			s.log.WarnContext(ctx, "s3 abort multipart upload", "url", t.shown, "err", err)
		}
	}
	part := max(minPart, (size+maxParts-1)/maxParts)
	at, _ := body.(io.ReaderAt)
	var buf []byte
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+part {
		l := min(part, size-off)
		var r io.ReadSeeker
		if at != nil {
			r = io.NewSectionReader(at, off, l)
		} else {
			if buf == nil {
				buf = make([]byte, part)
			}
			if _, err := body.Seek(off, io.SeekStart); err != nil {
				abort()
				return t.fail("put", err)
			}
			if _, err := io.ReadFull(body, buf[:l]); err != nil {
				abort()
				return t.fail("put", err)
			}
			r = bytes.NewReader(buf[:l])
		}
		var out *s3.UploadPartOutput
		err := s.do(ctx, t, "put", func(retryer func(*s3.Options)) (err error) {
			out, err = client.UploadPart(ctx, &s3.UploadPartInput{Bucket: in.Bucket, Key: in.Key, UploadId: created.UploadId,
				PartNumber: aws.Int32(n), Body: r, ContentLength: aws.Int64(l)}, retryer) // the SDK rewinds r for each retry
			return err
		})
		if err != nil {
			abort()
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	err = s.do(ctx, t, "put", func(retryer func(*s3.Options)) error {
		_, err := client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: created.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}, retryer)
		return err
	})
	if err != nil {
		abort()
	}
	return err
}
