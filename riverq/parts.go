package riverq

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/thumbd/thumbd/engine"
)

// PartKind is the River job kind of a part of a task (engine.Part).
const PartKind = "thumbd_part"

// PartPriority is the River priority of part jobs; task jobs have River's
// default, 1, and run first: a task started behind a task spread into many
// parts waits only for a part under way, not for every part.
const PartPriority = 2

// PartArgs are a part job's arguments.
type PartArgs struct {
	Token string `json:"token"`
	Part  int    `json:"part"`
	Parts int    `json:"parts"`
	First int    `json:"first"`
	Count int    `json:"count"`
	From  int    `json:"from,omitempty"` // a chunk of a series: its images From to To-1
	To    int    `json:"to,omitempty"`
}

// Kind implements river.JobArgs.
func (PartArgs) Kind() string { return PartKind }

// InsertOpts implements river.JobArgsWithInsertOpts: a part is queued at
// most once, behind the tasks that wait.
func (PartArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Priority: PartPriority, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func (a PartArgs) part() engine.Part {
	return engine.Part{Token: a.Token, Index: a.Part, Parts: a.Parts, First: a.First, Count: a.Count, From: a.From, To: a.To}
}

var _ engine.Spreader = (*Queue[any])(nil)

// EnqueueParts implements engine.Spreader: it queues the parts in one
// insert. Only a queue on PostgreSQL spreads tasks.
func (q *Queue[TTx]) EnqueueParts(ctx context.Context, parts []engine.Part) error {
	if q.parts == nil {
		return errors.New("riverq: only a queue on PostgreSQL spreads tasks into parts")
	}
	params := make([]river.InsertManyParams, len(parts))
	for i, p := range parts {
		params[i] = river.InsertManyParams{Args: PartArgs{Token: p.Token, Part: p.Index, Parts: p.Parts, First: p.First, Count: p.Count, From: p.From, To: p.To}}
	}
	if _, err := q.client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("riverq: queueing parts: %w", err)
	}
	q.parts.sweep(ctx)
	return nil
}

// SetPartWork implements engine.Spreader.
func (q *Queue[TTx]) SetPartWork(work func(ctx context.Context, p engine.Part) error) {
	q.part.Store(&work)
}

// PartDone implements engine.Spreader.
func (q *Queue[TTx]) PartDone(ctx context.Context, p engine.Part) (int, error) {
	if q.parts == nil {
		return 0, errors.New("riverq: only a queue on PostgreSQL spreads tasks into parts")
	}
	return q.parts.done(ctx, p)
}

// partStore is the table of the parts done, thumbd_part: a row per part
// of a task, saying which process made it (MadeBy: host name and process
// id). Rows are kept a day after they were written, as River keeps its
// completed jobs.
type partStore struct {
	pool   *pgxpool.Pool
	madeBy string
}

// partSchema creates the table; it runs under the migration lock.
const partSchema = `CREATE TABLE IF NOT EXISTS thumbd_part (
	task text NOT NULL,
	part integer NOT NULL,
	made_by text NOT NULL,
	done_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, part)
)`

func newPartStore(ctx context.Context, pool *pgxpool.Pool) (*partStore, error) {
	if _, err := pool.Exec(ctx, partSchema); err != nil {
		return nil, fmt.Errorf("riverq: creating thumbd_part: %w", err)
	}
	return &partStore{pool: pool, madeBy: MadeBy()}, nil
}

// MadeBy is what this process records as the maker of the parts it runs:
// its host name and process id.
func MadeBy() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// done records p as done by this process, unless it is recorded already (a
// part made again: its instance died after recording it, before River
// recorded its job's end, and the job was rescued), and counts the task's
// parts done,
// under a transaction-scoped advisory lock on the task: of parts finishing
// together, the last to take the lock counts them all.
func (s *partStore) done(ctx context.Context, p engine.Part) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "thumbd_part:"+p.Token); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO thumbd_part (task, part, made_by) VALUES ($1, $2, $3)
			ON CONFLICT (task, part) DO NOTHING`, p.Token, p.Index, s.madeBy); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM thumbd_part WHERE task = $1`, p.Token).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("riverq: recording a part done: %w", err)
	}
	return n, nil
}

// sweep forgets the parts recorded more than a day ago.
func (s *partStore) sweep(ctx context.Context) {
	_, _ = s.pool.Exec(ctx, `DELETE FROM thumbd_part WHERE done_at < now() - interval '1 day'`)
}
