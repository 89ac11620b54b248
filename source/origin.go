package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thumbd/thumbd/internal/netguard"
)

// errStalled cancels an origin read that waited longer than StallTimeout.
var errStalled = errors.New("stalled")

// fetch asks the origin for bytes [first, last] (last < 0: to the end).
// The response is 206, or 200 from an origin that ignores ranges; any
// other answer is returned as an error that describes it.
func (e *entry) fetch(ctx context.Context, first, last int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.origin, nil)
	if err != nil {
		return nil, e.fail(fmt.Errorf("the source URL cannot be requested: %s", e.shown))
	}
	if !e.noRanges {
		if last >= 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", first))
		}
	}
	req.Header.Set("User-Agent", "thumbd")
	req.Header.Set("Accept-Encoding", "identity")
	var resp *http.Response
	for try := 0; ; try++ {
		e.fetches.Add(1)
		resp, err = e.g.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if try < fetchRetries && errors.Is(err, syscall.ECONNRESET) {
				sleep(ctx, retryWait<<try)
				continue
			}
			return nil, e.fail(e.describe(err))
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if try < fetchRetries {
				resp.Body.Close()
				sleep(ctx, retryWait<<try)
				continue
			}
		}
		break
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
		return resp, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// Past the end: the size is in Content-Range "bytes */N".
		cr := resp.Header.Get("Content-Range")
		resp.Body.Close()
		if _, _, total, ok := parseContentRange(cr); ok && total >= 0 {
			if err := e.setSize(total); err != nil {
				return nil, err
			}
			return nil, errPastEnd
		}
		return nil, e.fail(fmt.Errorf("the source answered 416 Range Not Satisfiable for %s", e.shown))
	default:
		detail := s3ErrorDetail(resp)
		resp.Body.Close()
		return nil, e.fail(fmt.Errorf("the source answered %d %s%s for %s", resp.StatusCode, http.StatusText(resp.StatusCode), detail, e.shown))
	}
}

// A request that meets a busy origin (429, 502, 503, 504) or a reset
// connection is tried again fetchRetries times, waiting retryWait, then
// twice that.
const (
	fetchRetries = 2
	retryWait    = 250 * time.Millisecond
)

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errPastEnd is a range that starts at or after the end of the source.
var errPastEnd = errors.New("range starts past the end of the source")

var s3Code = regexp.MustCompile(`<Code>([^<]{1,100})</Code>`)

// s3ErrorDetail returns " (NoSuchKey)" for an S3-style XML error body.
func s3ErrorDetail(resp *http.Response) string {
	if !strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if m := s3Code.FindSubmatch(b); m != nil {
		return " (" + string(m[1]) + ")"
	}
	return ""
}

// describe turns a failed request into words a user can act on. It never
// quotes the request's URL, which may hold credentials or a signature.
func (e *entry) describe(err error) error {
	if b, ok := netguard.AsBlocked(err); ok {
		return fmt.Errorf("%s: %s", e.shown, b.Error())
	}
	var re *netguard.RedirectError
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %s", re.Msg, e.shown)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("the source host %s could not be found (DNS): %s", dns.Name, e.shown)
	}
	var cert *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &cert) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return fmt.Errorf("the source's TLS certificate is not valid: %s", e.shown)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("the source host refused the connection: %s", e.shown)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("the source closed the connection before it had sent the whole file: %s", e.shown)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("the source did not answer within %v: %s", e.g.cfg.HeaderTimeout, e.shown)
	}
	var ue interface{ Unwrap() error }
	msg := err.Error()
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		msg = ue.Unwrap().Error() // *url.Error: drop the URL it quotes
	}
	return fmt.Errorf("the source could not be read (%s): %s", msg, e.shown)
}

// readHead reads the first bytes of an http source: it learns the size,
// whether the origin takes ranges, and what the body is.
func (e *entry) readHead(ctx context.Context) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(time.Hour, func() { cancel(errStalled) })
	defer stall.Stop()
	stall.Stop()
	resp, err := e.fetch(rctx, 0, headSize-1)
	if errors.Is(err, errPastEnd) {
		return e.fail(fmt.Errorf("the source is empty (0 bytes): %s", e.shown))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer resp.Body.Close()
	total := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		first, _, t, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != 0 {
			return e.fail(fmt.Errorf("the source answered a range request with a bad Content-Range %q: %s", resp.Header.Get("Content-Range"), e.shown))
		}
		total = t
	} else {
		e.noRanges = true
	}
	if err := e.setSize(total); err != nil {
		return err
	}
	e.validators = validators(resp.Header)
	if e.noRanges {
		return e.spool(rctx, resp, stall)
	}
	var buf strings.Builder
	if _, err := copyBody(&buf, resp.Body, stall, e.g.cfg.StallTimeout, &e.read, headSize, e.g.rateCheck()); err != nil {
		return e.fail(e.readError(rctx, err))
	}
	e.head = []byte(buf.String())
	if len(e.head) == 0 && total < 0 {
		return e.fail(fmt.Errorf("the source is empty (0 bytes): %s", e.shown))
	}
	return e.sniff(e.head)
}

// readError describes a failed body read.
func (e *entry) readError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("the source stopped sending data for %v: %s", e.g.cfg.StallTimeout, e.shown)
	}
	var slow *slowError
	if errors.As(err, &slow) {
		return fmt.Errorf("%s: %s", slow.Error(), e.shown)
	}
	return e.describe(err)
}

// serveOrigin answers one of ffmpeg's requests from the origin.
func (e *entry) serveOrigin(w http.ResponseWriter, r *http.Request) {
	if f := e.Failure(); f != nil {
		http.Error(w, f.Error(), http.StatusBadGateway)
		return
	}
	start, end, ranged := parseRange(r.Header.Get("Range"))
	size := e.knownSize()
	if size >= 0 && start >= size {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if size >= 0 && (end < 0 || end >= size) {
		end = size - 1
	}
	ctx, stop := context.WithCancelCause(r.Context())
	defer stop(nil)
	unhook := context.AfterFunc(e.ctx, func() { stop(context.Canceled) })
	defer unhook()

	// The headers: a 206 for the bytes asked for when the size is known,
	// else a plain 200 stream.
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
		if ranged {
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.WriteHeader(http.StatusOK)
		}
	} else {
		if start > 0 {
			http.Error(w, "the source's size is unknown, so it cannot be read from an offset", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}

	pos := start
	if pos < int64(len(e.head)) && (!e.noRanges || int64(len(e.head)) == size) {
		stopAt := int64(len(e.head))
		if end >= 0 && end+1 < stopAt {
			stopAt = end + 1
		}
		if _, err := w.Write(e.head[pos:stopAt]); err != nil {
			return
		}
		pos = stopAt
	}
	stall := time.AfterFunc(time.Hour, func() { stop(errStalled) })
	defer stall.Stop()
	stall.Stop()
	chunk := int64(minChunk)
	retries := 0
	rate := e.g.rateCheck() // across the origin requests of this answer
	for end < 0 || pos <= end {
		last := int64(-1)
		if !e.noRanges {
			last = pos + chunk - 1
			if end >= 0 && last > end {
				last = end
			}
		}
		if b, ok := e.cached(pos, last); ok {
			if _, err := w.Write(b); err != nil {
				return
			}
			pos += int64(len(b))
			chunk = min(chunk*2, maxChunk)
			continue
		}
		resp, err := e.fetch(ctx, pos, last)
		if err != nil {
			return // recorded by fetch; ffmpeg sees a short body
		}
		skip := int64(0)
		if resp.StatusCode == http.StatusOK {
			skip = pos // the whole file again: skip to where ffmpeg is
		} else if first, _, _, ok := parseContentRange(resp.Header.Get("Content-Range")); !ok || first != pos {
			resp.Body.Close()
			e.fail(fmt.Errorf("the source answered a range request with a bad Content-Range %q: %s", resp.Header.Get("Content-Range"), e.shown))
			return
		}
		if skip > 0 {
			if _, err := copyBody(io.Discard, resp.Body, stall, e.g.cfg.StallTimeout, &e.read, skip, rate); err != nil {
				resp.Body.Close()
				e.fail(e.readError(ctx, err))
				return
			}
		}
		want := int64(-1)
		if last >= 0 {
			want = last - pos + 1
		} else if end >= 0 {
			want = end - pos + 1
		}
		limited := false
		if max := e.g.unsizedLimit(); want < 0 && max > 0 {
			// A body of unknown length (a live stream?): read one
			// byte past the limit at most.
			want, limited = max-pos+1, true
		}
		var keep *bytes.Buffer
		dst := io.Writer(w)
		if last >= 0 && skip == 0 && want <= maxCached {
			keep = &bytes.Buffer{}
			dst = io.MultiWriter(w, keep)
		}
		n, err := copyBody(dst, resp.Body, stall, e.g.cfg.StallTimeout, &e.read, want, rate)
		resp.Body.Close()
		if keep != nil && n == want {
			e.remember(pos, last, keep.Bytes())
		}
		pos += n
		var we *writeError
		switch {
		case errors.As(err, &we), r.Context().Err() != nil:
			return // ffmpeg went away: it seeks, or has what it needs
		case e.ctx.Err() != nil:
			return
		case err != nil && !errors.Is(context.Cause(ctx), errStalled) && !errors.As(err, new(*slowError)) && retries < 3:
			retries++ // a dropped connection: ask again from where it broke
			continue
		case err != nil:
			e.fail(e.readError(ctx, err))
			return
		case limited && n == want:
			e.fail(e.g.unsizedError(e.shown))
			return
		case limited:
			return // the end of a body of unknown length
		case want >= 0 && n < want:
			if size >= 0 {
				e.fail(fmt.Errorf("the source ended after %d of its %d bytes: %s", pos, size, e.shown))
			}
			return
		case want < 0:
			return // read to the end of a body of unknown length
		}
		chunk = min(chunk*2, maxChunk)
	}
}

// unsizedLimit is the most read from a source of unknown size; 0: no
// limit.
func (g *Gateway) unsizedLimit() int64 {
	if g.cfg.MaxUnsizedSize > 0 && (g.cfg.MaxSize <= 0 || g.cfg.MaxUnsizedSize < g.cfg.MaxSize) {
		return g.cfg.MaxUnsizedSize
	}
	return g.cfg.MaxSize
}

// unsizedError is a source of unknown size that went past unsizedLimit.
func (g *Gateway) unsizedError(shown string) error {
	setting := "THUMBD_MAX_SOURCE_SIZE"
	if g.unsizedLimit() != g.cfg.MaxSize {
		setting = "THUMBD_MAX_UNSIZED_SOURCE_SIZE"
	}
	return fmt.Errorf("the source sent more than this server's limit of %s (%s) without saying its size: %s", FormatSize(g.unsizedLimit()), setting, shown)
}

// parseRange parses ffmpeg's "bytes=N-" or "bytes=N-M". Anything else reads
// the whole source.
func parseRange(h string) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, -1, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, -1, false
	}
	start, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil || start < 0 {
		return 0, -1, false
	}
	end = -1
	if b = strings.TrimSpace(b); b != "" {
		end, err = strconv.ParseInt(b, 10, 64)
		if err != nil || end < start {
			return 0, -1, false
		}
	}
	return start, end, true
}

// parseContentRange parses "bytes A-B/TOTAL" (TOTAL may be "*": -1) and
// "bytes */TOTAL" (A and B -1).
func parseContentRange(h string) (first, last, total int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, 0, false
		}
		total = t
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// Chunks of up to maxCached bytes are kept, up to cacheSize per source:
// every ffmpeg process that opens a source reads the same index (an MP4's
// moov, often megabytes) and the same tail, and asks for them in the same
// ranges.
const (
	maxCached = 1 << 20
	cacheSize = 8 << 20
)

type chunkKey struct{ first, last int64 }

// cached returns the kept bytes of [first, last], if any.
func (e *entry) cached(first, last int64) ([]byte, bool) {
	if last < 0 {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.cache[chunkKey{first, last}]
	return b, ok
}

// remember keeps a chunk, dropping the oldest ones beyond cacheSize.
func (e *entry) remember(first, last int64, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := chunkKey{first, last}
	if _, ok := e.cache[k]; ok {
		return
	}
	if e.cache == nil {
		e.cache = map[chunkKey][]byte{}
	}
	e.cache[k] = bytes.Clone(b)
	e.order = append(e.order, k)
	e.cacheBytes += len(b)
	for e.cacheBytes > cacheSize && len(e.order) > 0 {
		old := e.order[0]
		e.order = e.order[1:]
		e.cacheBytes -= len(e.cache[old])
		delete(e.cache, old)
	}
}
