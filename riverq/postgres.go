package riverq

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// migrateLock is the key of the advisory lock held while River's tables
// are migrated, so that thumbd processes starting together do not race
// (River's migrator takes no lock of its own).
const migrateLock = 0x7468756d62642d72 // "thumbd-r"

// NewPostgres returns a Queue on a PostgreSQL database, migrated to River's
// latest schema, that several thumbd processes may share. Unlike NewSQLite
// it does not touch the jobs it finds running: they may belong to another
// live process. A job whose process died is run again by River's rescuer
// once it has been running longer than Options' Timeout plus Grace plus
// five minutes (24 hours without a Timeout), or after Options' Lease.
// A job River discards after its last attempt was lost with its process
// has its task given up by one of the queues running.
// Only a queue on PostgreSQL runs a task's parts (engine.Spreader); the
// parts done are recorded in the table thumbd_part.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Queue[pgx.Tx], error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("riverq: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("riverq: waiting for other thumbd processes' migrations: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock))
	q, err := New(ctx, riverpgxv5.New(pool), opts)
	if err != nil {
		return nil, err
	}
	if q.parts, err = newPartStore(ctx, pool); err != nil {
		return nil, err
	}
	q.discarded = &discardedJobs{pool: pool}
	q.countTasks = func(ctx context.Context) (n int, err error) {
		err = pool.QueryRow(ctx, countWaiting, Kind).Scan(&n)
		return n, err
	}
	return q, nil
}
