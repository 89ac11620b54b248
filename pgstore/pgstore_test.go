package pgstore_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/internal/storetest"
	"github.com/thumbd/thumbd/pgstore"
)

func open(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestStoreContract runs the store contract against MemoryStore and the
// PostgreSQL store: they must agree.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, map[string]func(t *testing.T) engine.Store{
		"memory":   func(*testing.T) engine.Store { return engine.NewMemoryStore() },
		"postgres": func(t *testing.T) engine.Store { return open(t, pgtest.URL(t)) },
	})
}

// TestTwoProcessesShareTasks: what one pool writes the other reads, both
// can open the same schema at once, and concurrent updates of one task
// are not lost (UpdateTask holds the row).
func TestTwoProcessesShareTasks(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	var a, b *pgstore.DB
	var wg sync.WaitGroup
	wg.Go(func() { a = open(t, url) })
	wg.Go(func() { b = open(t, url) })
	wg.Wait()
	if a == nil || b == nil {
		t.FailNow()
	}
	rec := storetest.StartedRecord(storetest.Tok('b'), storetest.T0)
	if err := a.CreateTask(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := b.Task(ctx, rec.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, rec.Spec) {
		t.Errorf("spec read by the other pool = %+v", got.Spec)
	}
	const n = 20
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			err := s.UpdateTask(ctx, rec.Token, func(r *engine.TaskRecord) error {
				r.Snap.Warnings = append(r.Snap.Warnings, engine.Warning{Message: "w"})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := a.Task(ctx, rec.Token); len(got.Snap.Warnings) != n {
		t.Errorf("%d warnings after %d concurrent updates: updates were lost", len(got.Snap.Warnings), n)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	tests := []struct{ name, url string }{
		{"unparsable", "postgres://thumbd:hunter2-secret@127.0.0.1:notaport/db"},
		{"unreachable", "postgres://thumbd:hunter2-secret@127.0.0.1:1/db?connect_timeout=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pgstore.Open(context.Background(), tt.url)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "hunter2-secret") {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}
