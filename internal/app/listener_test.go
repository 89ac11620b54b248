package app

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitConns dials more connections than the listener allows: only n
// are accepted until one of them is closed.
func TestLimitConns(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitConns(inner, 3)
	var accepted atomic.Int64
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns <- c
		}
	}()
	for i := 0; i < 6; i++ {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for accepted.Load() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := accepted.Load(); got != n {
			t.Fatalf("%d connections accepted, want %d", got, n)
		}
	}
	waitFor(3)
	time.Sleep(200 * time.Millisecond)
	if got := accepted.Load(); got != 3 {
		t.Fatalf("%d connections accepted with 3 allowed", got)
	}
	c := <-conns
	c.Close()
	c.Close() // a second Close frees no second place
	waitFor(4)
	time.Sleep(200 * time.Millisecond)
	if got := accepted.Load(); got != 4 {
		t.Fatalf("%d connections accepted after one of 3 closed", got)
	}

	// Closing the listener ends an Accept waiting for a place.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Accept on a closed listener succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept on a closed, full listener did not return")
	}
}
