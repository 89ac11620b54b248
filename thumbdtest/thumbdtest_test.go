package thumbdtest_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/thumbdtest"
)

// TestNew is how a test uses the kit: New(t), and nothing to stop.
func TestNew(t *testing.T) {
	srv := thumbdtest.New(t, thumbdtest.WithAPIKeys("my-project-key-0001", "other-key-00000002"))
	if srv.APIKey != "my-project-key-0001" {
		t.Errorf("APIKey = %q", srv.APIKey)
	}
	resp, err := http.PostForm(srv.URL+"/v1/access_token", map[string][]string{"api_key": {"not-a-key-of-this-server"}})
	if err != nil {
		t.Fatal(err)
	}
	var refused struct{ Error int }
	err = json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	if err != nil || refused.Error == 0 {
		t.Errorf("a key the server was not given: error %d, %v; want it refused", refused.Error, err)
	}
	var auth struct{ Token string }
	qencode(srv.URL, "/v1/access_token", map[string][]string{"api_key": {"other-key-00000002"}}, &auth)
	if auth.Token == "" {
		t.Error("no token for the second key")
	}
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Hold(thumbdtest.Hold{State: "nonsense"}); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("Hold of an unknown state: %v, want an error naming the state", err)
	}
	if n, err := srv.Release("", ""); err != nil || n != 0 {
		t.Errorf("Release with no holds = %d, %v", n, err)
	}
}

func TestCloseRemovesDataDir(t *testing.T) {
	srv, err := thumbdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.DataDir); err != nil {
		t.Fatalf("data directory: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.DataDir); !os.IsNotExist(err) {
		t.Errorf("data directory left behind: %v", err)
	}
	if _, err := http.Get(srv.URL + "/healthz"); err == nil {
		t.Error("the server still answers after Close")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMissingFFmpegSaysHowToInstall(t *testing.T) {
	_, err := thumbdtest.Start(thumbdtest.WithSetting("THUMBD_FFMPEG", "/nonexistent/ffmpeg"))
	if err == nil {
		t.Fatal("Start succeeded without ffmpeg")
	}
	for _, want := range []string{"/nonexistent/ffmpeg not found", "apt-get install ffmpeg", "brew install ffmpeg"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestBadSetting(t *testing.T) {
	_, err := thumbdtest.Start(thumbdtest.WithSetting("THUMBD_WORKERS", "lots"))
	if err == nil || !strings.Contains(err.Error(), "THUMBD_WORKERS") {
		t.Errorf("Start with a bad setting: %v", err)
	}
}
