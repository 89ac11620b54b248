package sqlitestore_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/storetest"
	"github.com/thumbd/thumbd/sqlitestore"
)

var (
	tok           = storetest.Tok
	t0            = storetest.T0
	startedRecord = storetest.StartedRecord
)

// TestStoreContract runs the same steps against MemoryStore and the SQLite
// store: they must agree.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, map[string]func(t *testing.T) engine.Store{
		"memory": func(*testing.T) engine.Store { return engine.NewMemoryStore() },
		"sqlite": func(t *testing.T) engine.Store {
			db, err := sqlitestore.Open(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := startedRecord(tok('b'), t0)
	if err := db.CreateTask(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSession(ctx, tok('1'), t0); err != nil {
		t.Fatal(err)
	}
	// A second process on the same directory is refused while the first
	// holds it.
	if _, err := sqlitestore.Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "another thumbd") {
		t.Errorf("second Open: %v, want a refusal", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Task(ctx, tok('b'))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, rec.Spec) {
		t.Errorf("spec after reopen = %+v", got.Spec)
	}
	if _, err := db.Session(ctx, tok('1')); err != nil {
		t.Errorf("session after reopen: %v", err)
	}
}
