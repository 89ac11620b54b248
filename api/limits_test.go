package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// bigQuery is a start_encode2 form of about n bytes.
func bigQuery(n int) string {
	return url.Values{"task_token": {fakeTask}, "query": {`{"query":{"source":"` + strings.Repeat("a", n) + `"}}`}}.Encode()
}

// TestQueryTooLargeGetsTheEnvelope sends a 12 MB query with a real HTTP
// client, in the ways clients send bodies: Go's client (which reads the
// reply while it sends), and a client that writes the whole request before
// it reads anything, with and without a Content-Length. Each must read
// Qencode's envelope, not a reset connection.
func TestQueryTooLargeGetsTheEnvelope(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	body := bigQuery(12 << 20)

	check := func(t *testing.T, raw []byte) {
		t.Helper()
		var r errorReply
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("reply %q is not JSON: %v", raw, err)
		}
		if r.Error != codeFieldRequired || !strings.Contains(r.Message, "query too large") {
			t.Fatalf("reply %+v, want error %d saying the query is too large", r, codeFieldRequired)
		}
		t.Log(r.Message)
	}

	t.Run("Go client", func(t *testing.T) {
		resp, err := http.Post(ts.URL+"/v1/start_encode2", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
		check(t, raw)
	})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("send all, then read (chunked %v)", chunked), func(t *testing.T) {
			c, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			w := bufio.NewWriterSize(c, 64<<10)
			fmt.Fprintf(w, "POST /v1/start_encode2 HTTP/1.1\r\nHost: thumbd\r\nContent-Type: application/x-www-form-urlencoded\r\n")
			if chunked {
				fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n")
				for rest := body; rest != ""; {
					n := min(len(rest), 1<<20)
					fmt.Fprintf(w, "%x\r\n%s\r\n", n, rest[:n])
					rest = rest[n:]
				}
				fmt.Fprintf(w, "0\r\n\r\n")
			} else {
				fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("sending the body: %v (the server reset the connection)", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the reply: %v", err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the reply's body: %v", err)
			}
			check(t, raw)
			if resp.Header.Get("Connection") != "close" && !resp.Close {
				t.Errorf("the reply does not close the connection")
			}
		})
	}
	if n := fe.startCount(); n != 0 {
		t.Fatalf("engine.Start was called %d times", n)
	}

	// A body just under the limit is read.
	resp, err := http.Post(ts.URL+"/v1/start_encode2", "application/x-www-form-urlencoded", strings.NewReader(bigQuery(maxBody-1000)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(raw, []byte("too large")) {
		t.Fatalf("a body under the limit was refused: %s", raw)
	}
}

// dribble opens a connection, sends the headers of a request whose body is
// n bytes, then one byte every gap until the body is sent or the server
// stops reading. It returns what the server answered (nil if nothing)
// and how long after the headers the connection was closed.
func dribble(t *testing.T, addr, path string, n int, gap time.Duration) (reply []byte, closedAfter time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: thumbd\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", path, n); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c) // until the server closes the connection
		read <- b
	}()
	for i := 0; i < n; i++ {
		select {
		case b := <-read:
			return b, time.Since(began)
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{'a'}); err != nil {
			break
		}
	}
	b := <-read
	return b, time.Since(began)
}

// TestSlowBodyCutOff: a client that sends its body one byte at a time is
// answered with Qencode's envelope and its connection closed once
// BodyTimeout has passed; an upload, which is long by nature, is not.
func TestSlowBodyCutOff(t *testing.T) {
	uploaded := make(chan int, 1)
	uploads := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("the upload's body: %v", err)
		}
		uploaded <- len(b)
		w.WriteHeader(http.StatusNoContent)
	})
	ts, fe := newTestServer(t, Config{BodyTimeout: 500 * time.Millisecond, Uploads: uploads})
	fe.mu.Lock()
	fe.snaps[fakeTask] = engine.Snapshot{State: engine.StateCreated}
	fe.mu.Unlock()
	addr := ts.Listener.Addr().String()

	reply, took := dribble(t, addr, "/v1/start_encode2", 1000, 100*time.Millisecond)
	if !bytes.Contains(reply, []byte(`"error":14`)) || !bytes.Contains(reply, []byte("did not arrive in time")) {
		t.Fatalf("reply %q, want Qencode's envelope saying the body was too slow", reply)
	}
	if took > 20*time.Second {
		t.Fatalf("the connection stayed open %v", took)
	}
	t.Logf("cut off after %v", took.Round(time.Millisecond))

	// The same path cleaned from one that looks like an upload is cut off too.
	reply, _ = dribble(t, addr, "/v1/upload_file/../status", 1000, 100*time.Millisecond)
	if !bytes.Contains(reply, []byte("did not arrive in time")) {
		t.Fatalf("reply %q, want the body cut off", reply)
	}

	// An upload sending for twice BodyTimeout is read whole.
	reply, _ = dribble(t, addr, "/v1/upload_file/"+fakeTask+"/x", 10, 100*time.Millisecond)
	if !bytes.HasPrefix(reply, []byte("HTTP/1.1 204")) {
		t.Fatalf("upload reply %q, want 204", reply)
	}
	if n := <-uploaded; n != 10 {
		t.Fatalf("the upload handler read %d bytes, want 10", n)
	}
}
