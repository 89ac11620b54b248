package sqlitestore_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

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
	if err := db.PutSession(ctx, tok('1'), engine.Session{Expires: t0, Owner: "o1"}); err != nil {
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
	if s, err := db.Session(ctx, tok('1')); err != nil || s.Owner != "o1" {
		t.Errorf("session after reopen: %+v, %v", s, err)
	}
}

// TestOpenAddsColumns: a database made before tasks had an owner opens,
// its tasks read with no owner and are listed.
func TestOpenAddsColumns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", filepath.Join(dir, sqlitestore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.Exec(`
CREATE TABLE thumbd_session (token TEXT PRIMARY KEY NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE thumbd_task (token TEXT PRIMARY KEY NOT NULL, created_at INTEGER NOT NULL, ended_at INTEGER,
	state TEXT NOT NULL, spec TEXT, snap TEXT NOT NULL);
INSERT INTO thumbd_session VALUES ('` + tok('1') + `', 1);
INSERT INTO thumbd_task VALUES ('` + tok('a') + `', 5, NULL, 'created', NULL, '{"State":"created"}');`)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Tasks(ctx, engine.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Token != tok('a') || got[0].Owner != "" || got[0].Snap.State != engine.StateCreated {
		t.Errorf("Tasks = %+v", got)
	}
	if s, err := db.Session(ctx, tok('1')); err != nil || s.Owner != "" {
		t.Errorf("Session = %+v, %v", s, err)
	}
	if err := db.CreateTask(ctx, engine.TaskRecord{Token: tok('b'), Created: t0, Owner: "o1", Snap: engine.Snapshot{State: engine.StateCreated}}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Tasks(ctx, engine.TaskFilter{Owner: "o1"}); err != nil || len(got) != 1 || got[0].Token != tok('b') {
		t.Errorf("Tasks(o1) = %+v, %v", got, err)
	}
}

// TestCheckNoticesTheFileGone deletes, and replaces, the database file
// under an open DB: Check fails and says what happened, and Watch logs it.
func TestCheckNoticesTheFileGone(t *testing.T) {
	tests := []struct {
		name string
		do   func(path string) error
		want string
	}{
		{"deleted", os.Remove, "was deleted while thumbd runs"},
		{"replaced", func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.WriteFile(path, nil, 0o600)
		}, "was replaced while thumbd runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db, err := sqlitestore.Open(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Check(ctx); err != nil {
				t.Fatalf("Check of a fresh database: %v", err)
			}
			var logs syncBuffer
			wctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { db.Watch(wctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil))); close(done) }()
			defer func() { stop(); <-done }()

			if err := tt.do(db.Path()); err != nil {
				t.Fatal(err)
			}
			err = db.Check(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), db.Path()) {
				t.Fatalf("Check = %v, want it to say the file %s", err, tt.want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), "level=ERROR") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, tt.want) || strings.Count(out, "level=ERROR") != 1 {
				t.Errorf("Watch logged %q, want one error saying %q", out, tt.want)
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
