package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thumbd/thumbd/internal/pgtest"
	"github.com/thumbd/thumbd/internal/s3test"
)

// farm is what the instances of a farm test share: a PostgreSQL schema of
// their own, a real S3 server whose bucket "kept" holds their kept files
// (under files/), the thumbd binary, the test clip served over HTTP, and a
// pool on the database for the test to read River's and thumbd's tables.
type farm struct {
	dbURL string
	s3    *s3test.Server
	bin   string
	src   string
	pool  *pgxpool.Pool
}

func newFarm(t *testing.T) *farm {
	t.Helper()
	f := &farm{dbURL: pgtest.URL(t), s3: s3test.Start(t), bin: buildThumbd(t), src: serveTestdata(t) + "/clip.mp4"}
	f.s3.CreateBucket(t, "kept")
	pool, err := pgxpool.New(context.Background(), f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	f.pool = pool
	return f
}

// start starts an instance of the farm with its own data directory and
// the extra settings.
func (f *farm) start(t *testing.T, extra ...string) *process {
	t.Helper()
	env := []string{
		"THUMBD_DATA_DIR=" + t.TempDir(), "THUMBD_DATABASE_URL=" + f.dbURL,
		"THUMBD_FILES_URL=s3://" + url.PathEscape(f.s3.AccessKey) + ":" + url.PathEscape(f.s3.Secret) + "@" + f.s3.Endpoint + "/kept/files",
	}
	return startProcess(t, f.bin, append(env, extra...)...)
}

// maker is how thumbd_part names the instance p: host/pid.
func maker(p *process) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, p.cmd.Process.Pid)
}

// partsMade reads what thumbd_part recorded of a task's parts and checks
// it: parts 0 to n-1, each once, and some made by each of procs. It
// returns the maker (host/pid) of each part, and logs how many each
// instance made.
func (f *farm) partsMade(t *testing.T, token string, n int, procs ...*process) map[int]string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT part, made_by FROM thumbd_part WHERE task = $1 ORDER BY part`, token)
	if err != nil {
		t.Fatal(err)
	}
	by := map[int]string{}
	perMaker := map[string]int{}
	next := 0
	for rows.Next() {
		var part int
		var m string
		if err := rows.Scan(&part, &m); err != nil {
			t.Fatal(err)
		}
		if part != next {
			t.Errorf("part %d recorded, want %d", part, next)
		}
		next = part + 1
		by[part] = m
		perMaker[m]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(by) != n {
		t.Errorf("%d parts recorded, want %d", len(by), n)
	}
	t.Logf("parts made per instance: %v", perMaker)
	for i, p := range procs {
		if perMaker[maker(p)] == 0 {
			t.Errorf("instance %c (%s) made no part: %v", 'A'+i, maker(p), perMaker)
		}
	}
	return by
}
