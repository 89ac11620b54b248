//go:build unix

package sqlitestore

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path, which it creates: the lock ends
// with the process, however it ends.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlitestore: %s is in use by another thumbd (only one process may use a data directory): %w", path, err)
	}
	return f, nil
}
