package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxHashed is the largest upload whose content is hashed for ContentKey;
// a larger one has no key, and is probed every time.
const maxHashed = 256 << 20

// ContentKey implements engine.ContentKeyer: a key that changes whenever
// the source's bytes may have, or "" when that cannot be told.
//
//   - http(s) and s3:// sources: the URL as given, the size, and the
//     validators the origin sent (ETag, Last-Modified); without a
//     validator there is no key.
//   - file:// sources: the path, the file's size and modification time
//     (to the nanosecond).
//   - tus: uploads: a SHA-256 of their content (up to 256 MiB).
func (e *entry) ContentKey() string {
	size := e.knownSize()
	var parts []string
	switch {
	case e.kind == kindHTTP || e.spooled:
		if e.validators == "" || size < 0 {
			return ""
		}
		parts = []string{"http", e.ident, fmt.Sprint(size), e.validators}
	case e.upload:
		if size < 0 || size > maxHashed {
			return ""
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(e.file, 0, size)); err != nil {
			return ""
		}
		parts = []string{"upload", fmt.Sprint(size), hex.EncodeToString(h.Sum(nil))}
	default:
		fi, err := e.file.Stat()
		if err != nil {
			return ""
		}
		parts = []string{"file", e.ident, fmt.Sprint(fi.Size()), fmt.Sprint(fi.ModTime().UnixNano())}
	}
	// The URL may hold credentials: only a hash of it is kept.
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

// validators returns a response's ETag and Last-Modified, or "" when it
// has neither.
func validators(h http.Header) string {
	etag, mod := h.Get("ETag"), h.Get("Last-Modified")
	if etag == "" && mod == "" {
		return ""
	}
	return "etag=" + etag + "\x00modified=" + mod
}
