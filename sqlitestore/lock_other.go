//go:build !unix

package sqlitestore

import (
	"fmt"
	"os"
)

// lockFile creates path; on this platform it takes no lock.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	return f, nil
}
