package app

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestDataDirErrorSaysWhatToRun(t *testing.T) {
	denied := &fs.PathError{Op: "mkdir", Path: "/var/lib/thumbd/files", Err: fs.ErrPermission}
	msg := dataDirError("/var/lib/thumbd", denied).Error()
	want := fmt.Sprintf("sudo chown -R %d:%d <folder>", os.Getuid(), os.Getgid())
	if !strings.Contains(msg, "permission denied") || !strings.Contains(msg, want) {
		t.Errorf("permission error = %q, want it to say %q", msg, want)
	}
	other := &fs.PathError{Op: "mkdir", Path: "/x", Err: fs.ErrExist}
	if msg := dataDirError("/x", other).Error(); strings.Contains(msg, "chown") {
		t.Errorf("a non-permission error suggests chown: %q", msg)
	}
}
