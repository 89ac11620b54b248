package engine

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestMemoryQueueWorkers checks that a MemoryQueue runs as many tasks at
// once as it was built for, and no more.
func TestMemoryQueueWorkers(t *testing.T) {
	for _, workers := range []int{1, 3} {
		q := NewMemoryQueue(16, workers)
		const tasks = 6
		for i := range tasks {
			if err := q.Enqueue(context.Background(), string(rune('a'+i))); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu                  sync.Mutex
			running, most, done int
		)
		release := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() {
			ran <- q.Run(ctx, func(ctx context.Context, token string) error {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				<-release
				mu.Lock()
				running--
				if done++; done == tasks {
					cancel()
				}
				mu.Unlock()
				return nil
			})
		}()
		// Wait for the workers to be busy, give any extra one time to
		// start, then let them all finish.
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := running
			mu.Unlock()
			if n >= workers {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("workers %d: only %d tasks started", workers, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		close(release)
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
		if most != workers || done != tasks {
			t.Errorf("workers %d: at most %d tasks ran at once, %d of %d ran", workers, most, done, tasks)
		}
	}
}
