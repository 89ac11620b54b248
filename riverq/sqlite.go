package riverq

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// NewSQLite returns a Queue on an SQLite database (its pool should have one
// connection, as River's SQLite driver advises), migrated to River's latest
// schema. db must be used by this process alone: the task and callback jobs it finds
// running were left so by a process that died, and are made available
// again at once instead of waiting for River's rescuer.
func NewSQLite(ctx context.Context, db *sql.DB, opts Options) (*Queue[*sql.Tx], error) {
	opts.Lease = 0 // one process owns the file: what it left running is made available below
	q, err := New(ctx, riversqlite.New(db), opts)
	if err != nil {
		return nil, err
	}
	q.countTasks = func(ctx context.Context) (n int, err error) {
		err = db.QueryRowContext(ctx, countWaiting, Kind).Scan(&n)
		return n, err
	}
	res, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running' AND kind IN (?, ?)`, Kind, CallbackKind)
	if err != nil {
		return nil, fmt.Errorf("riverq: making interrupted tasks available: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		q.opts.Logger.Info("tasks and callbacks left running by a previous process made available again", "jobs", n)
	}
	return q, nil
}
