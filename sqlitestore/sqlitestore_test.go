package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
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

// TestExpiredSessionsAreSwept issues access tokens in rounds, each round's
// expiring before the next, with the engine's sweep between rounds (and no
// task retention, which used to turn the sweep off): the database file
// stops growing after the first round.
func TestExpiredSessionsAreSwept(t *testing.T) {
	ctx := t.Context()
	db, err := sqlitestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e := engine.New(engine.Config{Store: db, TokenTTL: time.Minute, Retention: 0, Now: func() time.Time { return now }})
	size := func() int64 {
		var total int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(db.Path() + suffix); err == nil {
				total += fi.Size()
			}
		}
		return total
	}
	const rounds, perRound = 5, 2000
	var first int64
	var last string
	for r := range rounds {
		for range perRound {
			tok, _, err := e.NewSession(ctx, "sweep-test-key-0001")
			if err != nil {
				t.Fatal(err)
			}
			last = tok
		}
		now = now.Add(2 * time.Minute)
		if err := e.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Session(ctx, last); !errors.Is(err, engine.ErrTokenNotFound) {
			t.Fatalf("round %d: an expired token is still kept (%v)", r+1, err)
		}
		if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d tokens issued, database %d KiB", r+1, (r+1)*perRound, size()>>10)
		if r == 0 {
			first = size()
		}
	}
	if got := size(); got > first+first/10 {
		t.Errorf("database grew from %d to %d bytes over %d rounds of tokens that all expired", first, got, rounds)
	}
}

// TestSessionsOfAnOlderDatabase opens a database made before sessions
// recorded their key: it gains the column, and its sessions read with no
// key, which a server with API keys refuses.
func TestSessionsOfAnOlderDatabase(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", filepath.Join(dir, sqlitestore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `CREATE TABLE thumbd_session (token TEXT PRIMARY KEY NOT NULL, expires_at INTEGER NOT NULL);
		INSERT INTO thumbd_session VALUES ('`+tok('1')+`', 9000000000000000000)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := sqlitestore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := db.Session(ctx, tok('1'))
	if err != nil || s.Owner != "" {
		t.Fatalf("old session = %+v, %v", s, err)
	}
	e := engine.New(engine.Config{Store: db, APIKeys: []string{"a-current-key-0001"}})
	if _, err := e.CreateTask(ctx, tok('1')); !errors.Is(err, engine.ErrTokenNotFound) {
		t.Errorf("CreateTask with a session of unknown key: %v, want ErrTokenNotFound", err)
	}
	if err := db.PutSession(ctx, tok('2'), engine.Session{Expires: time.Now().Add(time.Hour), Owner: engine.KeyOwner("a-current-key-0001")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTask(ctx, tok('2')); err != nil {
		t.Errorf("CreateTask with a current key's session: %v", err)
	}
}
