package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
)

// TestSlowClientsBounded holds thumbd's every connection with clients that
// send their bodies one byte at a time. They are cut off after the body
// timeout with Qencode's envelope, and while they hold their places a new
// client waits instead of getting a connection of its own: the number of
// connections, and of file descriptors, stays bounded.
func TestSlowClientsBounded(t *testing.T) {
	const conns = 3
	th := runThumbd(t, testConfig(t, func(c *app.Config) {
		c.MaxConns = conns
		c.BodyTimeout = 1500 * time.Millisecond
	}))
	addr := strings.TrimPrefix(th.base, "http://")

	type result struct{ reply string }
	results := make(chan result, 2*conns)
	var wg sync.WaitGroup
	for range 2 * conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			fmt.Fprintf(c, "POST /v1/access_token HTTP/1.1\r\nHost: thumbd\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
			read := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(c); read <- b }()
			for {
				select {
				case b := <-read:
					results <- result{string(b)}
					return
				case <-time.After(200 * time.Millisecond):
				}
				c.Write([]byte{'a'}) // an error is seen as the read's end
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(th.base + "/healthz")
	if err != nil {
		t.Fatalf("a client behind the slow ones: %v", err)
	}
	resp.Body.Close()
	answered := time.Now()
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		if !strings.Contains(r.reply, `"error":14`) || !strings.Contains(r.reply, "did not arrive in time") {
			t.Errorf("a slow client read %q, want Qencode's envelope saying its body was too slow", r.reply)
		}
	}
	if n != 2*conns {
		t.Fatalf("%d slow clients ended, want %d", n, 2*conns)
	}
	// /healthz could only be answered once a slow client had been cut
	// off, about 1.2 s after it asked (1.5 s after the slow ones began).
	if waited := answered.Sub(began); waited < time.Second {
		t.Fatalf("/healthz was answered after %v, before any slow client was cut off: connections are not bounded", waited)
	}
	t.Logf("/healthz waited %v behind %d slow clients", answered.Sub(began).Round(time.Millisecond), conns)
}
