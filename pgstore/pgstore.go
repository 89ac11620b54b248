// Package pgstore keeps thumbd's access tokens and tasks in PostgreSQL
// (github.com/jackc/pgx/v5), so that several thumbd processes can share
// them. The same database holds River's queue tables (package riverq): Pool
// returns the connection pool to hand to River's riverpgxv5 driver.
//
// The schema mirrors package sqlitestore: tables thumbd_session and
// thumbd_task (River's tables are named river_*), times kept as Unix
// nanoseconds, the spec and the status as JSON text. They are created in
// the connection's current schema, which a search_path parameter in the
// URL chooses.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/taskrow"
)

// DB is an engine.Store kept in PostgreSQL.
type DB struct {
	pool *pgxpool.Pool
}

var _ engine.Store = (*DB)(nil)

// schemaLock is the key of the advisory lock taken while the schema is
// created, so that thumbd processes starting together do not race.
const schemaLock = 0x7468756d6264 // "thumbd"

const schema = `
CREATE TABLE IF NOT EXISTS thumbd_session (
	token      TEXT PRIMARY KEY NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbd_task (
	token      TEXT PRIMARY KEY NOT NULL,
	created_at BIGINT NOT NULL,
	ended_at   BIGINT,
	state      TEXT NOT NULL,
	spec       TEXT,
	snap       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS thumbd_task_state ON thumbd_task (state, created_at);
CREATE INDEX IF NOT EXISTS thumbd_task_ended ON thumbd_task (ended_at);
CREATE INDEX IF NOT EXISTS thumbd_session_expires ON thumbd_session (expires_at);
ALTER TABLE thumbd_session ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
ALTER TABLE thumbd_task ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS thumbd_task_owner ON thumbd_task (owner, created_at);
`

// Open connects to the database at url (postgres://user:password@host/db)
// and creates the tables it lacks. Errors never hold the URL's password.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, wrap(err) // pgconn masks the password in parse errors
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(err)
	}
	d := &DB{pool: pool}
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: creating tables in %s: %w", Describe(cfg.ConnConfig), err)
	}
	return d, nil
}

func (d *DB) migrate(ctx context.Context) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, schema); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Describe names a database by host, port and database name, never its
// password: for logs.
func Describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Pool returns the connection pool, for River's riverpgxv5 driver.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Close closes the connection pool.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// PutSession implements engine.Store.
func (d *DB) PutSession(ctx context.Context, token string, s engine.Session) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO thumbd_session (token, expires_at, owner) VALUES ($1, $2, $3)
		ON CONFLICT (token) DO UPDATE SET expires_at = EXCLUDED.expires_at, owner = EXCLUDED.owner`, token, taskrow.Nanos(s.Expires), s.Owner)
	return wrap(err)
}

// Session implements engine.Store.
func (d *DB) Session(ctx context.Context, token string) (engine.Session, error) {
	var (
		n int64
		s engine.Session
	)
	err := d.pool.QueryRow(ctx, `SELECT expires_at, owner FROM thumbd_session WHERE token = $1`, token).Scan(&n, &s.Owner)
	if errors.Is(err, pgx.ErrNoRows) {
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
		return fmt.Errorf("pgstore: %w", err)
	}
	_, err = d.pool.Exec(ctx, `INSERT INTO thumbd_task (token, created_at, ended_at, state, spec, snap, owner) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		row.Token, row.Created, row.Ended, string(rec.Snap.State), row.Spec, row.Snap, row.Owner)
	return wrap(err)
}

const selectTask = `SELECT ` + taskrow.Columns + ` FROM thumbd_task WHERE token = $1`

// Task implements engine.Store.
func (d *DB) Task(ctx context.Context, token string) (engine.TaskRecord, error) {
	return scanTask(d.pool.QueryRow(ctx, selectTask, token))
}

// UpdateTask implements engine.Store: the read (SELECT ... FOR UPDATE, so
// that another process's update of the same task waits), f and the write
// happen in one transaction.
func (d *DB) UpdateTask(ctx context.Context, token string, f func(*engine.TaskRecord) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rec, err := scanTask(tx.QueryRow(ctx, selectTask+` FOR UPDATE`, token))
	if err != nil {
		return err
	}
	if err := f(&rec); err != nil {
		return err
	}
	row, err := taskrow.Encode(rec)
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE thumbd_task SET ended_at = $1, state = $2, spec = $3, snap = $4 WHERE token = $5`,
		row.Ended, string(rec.Snap.State), row.Spec, row.Snap, token); err != nil {
		return wrap(err)
	}
	return wrap(tx.Commit(ctx))
}

// Tasks implements engine.Store.
func (d *DB) Tasks(ctx context.Context, f engine.TaskFilter) ([]engine.TaskRecord, error) {
	q := `SELECT ` + taskrow.Columns + ` FROM thumbd_task WHERE TRUE`
	var args []any
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		args = append(args, states)
		q += fmt.Sprintf(` AND state = ANY($%d)`, len(args))
	}
	if f.Owner != "" {
		args = append(args, f.Owner)
		q += fmt.Sprintf(` AND owner = $%d`, len(args))
	}
	q += ` ORDER BY created_at DESC, token COLLATE "C" DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := d.pool.Query(ctx, q, args...)
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
	return d.tokens(ctx, `SELECT token FROM thumbd_task WHERE spec IS NOT NULL AND state NOT IN ($1, $2) ORDER BY created_at`,
		string(engine.StateCompleted), string(engine.StateError))
}

// Expired implements engine.Store.
func (d *DB) Expired(ctx context.Context, t time.Time) ([]string, error) {
	return d.tokens(ctx, `SELECT token FROM thumbd_task WHERE (ended_at IS NOT NULL AND ended_at < $1) OR (spec IS NULL AND created_at < $1) ORDER BY token COLLATE "C"`,
		taskrow.Nanos(t))
}

// DeleteTask implements engine.Store.
func (d *DB) DeleteTask(ctx context.Context, token string) error {
	_, err := d.pool.Exec(ctx, `DELETE FROM thumbd_task WHERE token = $1`, token)
	return wrap(err)
}

// DeleteSessions implements engine.Store.
func (d *DB) DeleteSessions(ctx context.Context, t time.Time) error {
	_, err := d.pool.Exec(ctx, `DELETE FROM thumbd_session WHERE expires_at < $1`, taskrow.Nanos(t))
	return wrap(err)
}

// Reset implements engine.Store: the tasks it returns are the ones it
// deleted, even while other processes add some.
func (d *DB) Reset(ctx context.Context) ([]string, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, `DELETE FROM thumbd_task RETURNING token`)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrap(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM thumbd_session`); err != nil {
		return nil, wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap(err)
	}
	slices.Sort(out) // bytewise, as SQLite's ORDER BY token
	return out, nil
}

func (d *DB) tokens(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, wrap(err)
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pgstore: %w", err)
}

type scanner interface{ Scan(dest ...any) error }

// scanTask reads one task row, or ErrTokenNotFound.
func scanTask(row scanner) (engine.TaskRecord, error) {
	var r taskrow.Row
	err := row.Scan(r.Dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.TaskRecord{}, engine.ErrTokenNotFound
	}
	if err != nil {
		return engine.TaskRecord{}, wrap(err)
	}
	rec, err := r.Decode()
	return rec, wrap(err)
}
