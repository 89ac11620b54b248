package engine

import (
	"context"
	"strings"
	"time"
)

// Presigner turns an s3:// URL into an https URL that ffmpeg can read.
// storage.S3 implements it.
type Presigner interface {
	Presign(ctx context.Context, rawURL, key, secret string, ttl time.Duration) (string, error)
}

// openSource returns what ffmpeg should read for a source URL.
func (e *Engine) openSource(ctx context.Context, src string) (string, error) {
	if strings.HasPrefix(src, "s3://") {
		p, ok := e.cfg.Objects.(Presigner)
		if !ok {
			return "", &SourceError{Reason: "s3:// sources are not available on this server"}
		}
		u, err := p.Presign(ctx, src, "", "", 6*time.Hour)
		if err != nil {
			return "", &SourceError{Reason: "the s3:// source could not be signed", Err: err}
		}
		return u, nil
	}
	return src, nil
}
