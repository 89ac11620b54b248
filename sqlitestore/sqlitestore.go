// Package sqlitestore keeps thumbd's access tokens and tasks in an embedded
// SQLite database (modernc.org/sqlite: pure Go, no cgo), so that a restart
// loses nothing. The same database file holds River's queue tables (package
// riverq): SQL returns the connection pool to hand to River's SQLite driver.
//
// One process owns a database: Open takes an exclusive lock on a file
// beside it and fails if another thumbd holds it. The pool has a single
// connection, as River's SQLite driver advises (SQLite allows one writer at
// a time; one connection avoids SQLITE_BUSY).
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/taskrow"
)

// FileName is the database's file name inside the data directory.
const FileName = "thumbd.db"

// DB is an engine.Store kept in SQLite.
type DB struct {
	db   *sql.DB
	lock *os.File
	path string
	file os.FileInfo // the database file as opened: Check compares it
}

var _ engine.Store = (*DB)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS thumbd_session (
	token      TEXT PRIMARY KEY NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbd_task (
	token      TEXT PRIMARY KEY NOT NULL,
	created_at INTEGER NOT NULL,
	ended_at   INTEGER,
	state      TEXT NOT NULL,
	spec       TEXT,
	snap       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS thumbd_task_state ON thumbd_task (state, created_at);
CREATE INDEX IF NOT EXISTS thumbd_task_ended ON thumbd_task (ended_at);
CREATE INDEX IF NOT EXISTS thumbd_session_expires ON thumbd_session (expires_at);
`

// columns are the columns added to the tables since they were first laid
// out: Open adds those an older database lacks.
var columns = []struct{ table, name, decl string }{
	{"thumbd_session", "owner", "TEXT NOT NULL DEFAULT ''"},
	{"thumbd_task", "owner", "TEXT NOT NULL DEFAULT ''"},
}

// indexes need the added columns.
const indexes = `CREATE INDEX IF NOT EXISTS thumbd_task_owner ON thumbd_task (owner, created_at);`

// addColumns adds the columns an older database lacks, then their indexes.
func addColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range columns {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.name+` `+c.decl); err != nil {
				return err
			}
		}
	}
	_, err := db.ExecContext(ctx, indexes)
	return err
}

// Open opens (creating it if need be) the database in dir and brings its
// schema up to date. The database file is readable by its owner only: specs
// hold destination secrets.
func Open(ctx context.Context, dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlitestore: the data directory %q must not contain ? or #", dir)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	_, err = db.ExecContext(ctx, schema)
	if err == nil {
		err = addColumns(ctx, db)
	}
	if err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("sqlitestore: creating tables in %s: %w", path, err)
	}
	return &DB{db: db, lock: lock, path: path, file: fi}, nil
}

// Check reports whether the database is still usable: its file is where it
// was opened (not deleted, moved or replaced, after which every write would
// go to a file no restart finds) and it answers a query.
func (d *DB) Check(ctx context.Context) error {
	fi, err := os.Stat(d.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("sqlitestore: the database file %s was deleted while thumbd runs: what is written now is lost at the next restart; restore the file or restart thumbd", d.path)
	case err != nil:
		return fmt.Errorf("sqlitestore: the database file: %w", err)
	case !os.SameFile(fi, d.file):
		return fmt.Errorf("sqlitestore: the database file %s was replaced while thumbd runs: thumbd still writes to the old one; restart thumbd", d.path)
	}
	var one int
	if err := d.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap(err)
	}
	return nil
}

// Watch runs Check every interval until ctx ends, and logs an error when
// it starts failing and again when it recovers.
func (d *DB) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := d.Check(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			log.Error("the task database is unusable", "err", err)
		case err == nil && failing:
			log.Info("the task database is usable again", "path", d.path)
		}
		failing = err != nil
	}
}

// SQL returns the connection pool, for River's SQLite driver.
func (d *DB) SQL() *sql.DB { return d.db }

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Close closes the database and releases its lock.
func (d *DB) Close() error {
	err := d.db.Close()
	if lerr := d.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// PutSession implements engine.Store.
func (d *DB) PutSession(ctx context.Context, token string, s engine.Session) error {
	_, err := d.db.ExecContext(ctx, `INSERT OR REPLACE INTO thumbd_session (token, expires_at, owner) VALUES (?, ?, ?)`, token, taskrow.Nanos(s.Expires), s.Owner)
	return wrap(err)
}

// Session implements engine.Store.
func (d *DB) Session(ctx context.Context, token string) (engine.Session, error) {
	var (
		n int64
		s engine.Session
	)
	err := d.db.QueryRowContext(ctx, `SELECT expires_at, owner FROM thumbd_session WHERE token = ?`, token).Scan(&n, &s.Owner)
	if errors.Is(err, sql.ErrNoRows) {
		return s, engine.ErrTokenNotFound
	}
	if err != nil {
		return s, wrap(err)
	}
	s.Expires = taskrow.FromNanos(n).UTC()
	return s, nil
}

// CreateTask implements engine.Store.
func (d *DB) CreateTask(ctx context.Context, rec engine.TaskRecord) error {
	row, err := taskrow.Encode(rec)
	if err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO thumbd_task (token, created_at, ended_at, state, spec, snap, owner) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		row.Token, row.Created, row.Ended, string(rec.Snap.State), row.Spec, row.Snap, row.Owner)
	return wrap(err)
}

const selectTask = `SELECT ` + taskrow.Columns + ` FROM thumbd_task WHERE token = ?`

// Task implements engine.Store.
func (d *DB) Task(ctx context.Context, token string) (engine.TaskRecord, error) {
	return scanTask(d.db.QueryRowContext(ctx, selectTask, token))
}

// UpdateTask implements engine.Store: the read, f and the write happen in
// one transaction.
func (d *DB) UpdateTask(ctx context.Context, token string, f func(*engine.TaskRecord) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback()
	rec, err := scanTask(tx.QueryRowContext(ctx, selectTask, token))
	if err != nil {
		return err
	}
	if err := f(&rec); err != nil {
		return err
	}
	row, err := taskrow.Encode(rec)
	if err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE thumbd_task SET ended_at = ?, state = ?, spec = ?, snap = ? WHERE token = ?`,
		row.Ended, string(rec.Snap.State), row.Spec, row.Snap, token); err != nil {
		return wrap(err)
	}
	return wrap(tx.Commit())
}

// Tasks implements engine.Store.
func (d *DB) Tasks(ctx context.Context, f engine.TaskFilter) ([]engine.TaskRecord, error) {
	q := `SELECT ` + taskrow.Columns + ` FROM thumbd_task WHERE 1`
	var args []any
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(`, ?`, len(f.States)-1) + `)`
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.Owner != "" {
		q += ` AND owner = ?`
		args = append(args, f.Owner)
	}
	q += ` ORDER BY created_at DESC, token DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []engine.TaskRecord
	for rows.Next() {
		rec, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, wrap(rows.Err())
}

// Unfinished implements engine.Store.
func (d *DB) Unfinished(ctx context.Context) ([]string, error) {
	return d.tokens(ctx, `SELECT token FROM thumbd_task WHERE spec IS NOT NULL AND state NOT IN (?, ?) ORDER BY created_at`,
		string(engine.StateCompleted), string(engine.StateError))
}

// Expired implements engine.Store.
func (d *DB) Expired(ctx context.Context, t time.Time) ([]string, error) {
	return d.tokens(ctx, `SELECT token FROM thumbd_task WHERE (ended_at IS NOT NULL AND ended_at < ?) OR (spec IS NULL AND created_at < ?) ORDER BY token`,
		taskrow.Nanos(t), taskrow.Nanos(t))
}

// DeleteTask implements engine.Store.
func (d *DB) DeleteTask(ctx context.Context, token string) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM thumbd_task WHERE token = ?`, token)
	return wrap(err)
}

// DeleteSessions implements engine.Store.
func (d *DB) DeleteSessions(ctx context.Context, t time.Time) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM thumbd_session WHERE expires_at < ?`, taskrow.Nanos(t))
	return wrap(err)
}

// Reset implements engine.Store.
func (d *DB) Reset(ctx context.Context) ([]string, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT token FROM thumbd_task ORDER BY token`)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := collect(rows)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM thumbd_task; DELETE FROM thumbd_session;`); err != nil {
		return nil, wrap(err)
	}
	return out, wrap(tx.Commit())
}

func (d *DB) tokens(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(err)
	}
	return collect(rows)
}

func collect(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, wrap(err)
		}
		out = append(out, t)
	}
	return out, wrap(rows.Err())
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlitestore: %w", err)
}

type scanner interface{ Scan(dest ...any) error }

// scanTask reads one task row, or ErrTokenNotFound.
func scanTask(row scanner) (engine.TaskRecord, error) {
	var r taskrow.Row
	err := row.Scan(r.Dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return engine.TaskRecord{}, engine.ErrTokenNotFound
	}
	if err != nil {
		return engine.TaskRecord{}, wrap(err)
	}
	rec, err := r.Decode()
	return rec, wrap(err)
}
