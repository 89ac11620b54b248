package main

import (
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/frametest"
)

// readme is the project's README, whose first examples these tests run.
const readme = "../../README.md"

// readmeBlock returns the first ```lang block after the heading.
func readmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(s[i:])
	if m == nil {
		t.Fatalf("README.md has no %s block after %q", lang, heading)
	}
	return m[1]
}

// shellWords splits a shell snippet into words: blanks separate them,
// single and double quotes group (and are removed), "#" starts a comment.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\\':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '#' && !in:
			quote = '\n' // to the end of the line
		default:
			w.WriteRune(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// curlCall is one curl command of the README: POST form to path, and
// maybe keep a field of the reply (`VAR=$(curl ... | jq -r .field)`).
type curlCall struct {
	path     string
	form     url.Values
	keep, jq string
}

// parseCurls reads the curl commands of a README block written against
// base ($B).
func parseCurls(t *testing.T, block string) []curlCall {
	t.Helper()
	var calls []curlCall
	words := shellWords(block)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasSuffix(w, "curl") {
			continue
		}
		c := curlCall{form: url.Values{}}
		if v, ok := strings.CutSuffix(w, "=$(curl"); ok {
			c.keep = v
		}
		for i++; i < len(words) && !strings.HasSuffix(words[i], "curl"); i++ {
			switch a := words[i]; {
			case a == "-d" || a == "--data-urlencode":
				i++
				k, v, _ := strings.Cut(words[i], "=")
				c.form.Add(k, v)
			case strings.HasPrefix(a, "$B/"):
				c.path = strings.TrimPrefix(a, "$B")
			case a == "-r" && c.keep != "":
				i++
				c.jq = strings.TrimSuffix(strings.TrimPrefix(words[i], "."), ")")
			}
		}
		i--
		if c.path == "" {
			t.Fatalf("a curl command of the README has no $B/ path: %q", w)
		}
		calls = append(calls, c)
	}
	return calls
}

// TestReadmeFirstJob runs the README's first example, its curl commands
// done with net/http, against thumbd with private networks refused: the
// sample video on thumbd's own address is read from the binary, so the
// task completes with no network. The images are checked for the frame
// they show, read off the picture.
func TestReadmeFirstJob(t *testing.T) {
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.AllowPrivateNetworks = false }))
	req, _ := http.NewRequest("GET", th.base+"/static/test_mini.mp4", nil)
	req.Header.Set("Range", "bytes=0-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(head[4:]) != "ftyp" || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("GET /static/test_mini.mp4 bytes 0-7: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), head)
	}
	block := readmeBlock(t, "## A first job", "sh")
	if !strings.Contains(block, "B=http://127.0.0.1:8080\n") {
		t.Fatalf("the README's example does not start with B=http://127.0.0.1:8080:\n%s", block)
	}
	// What a user on another port does: change the host.
	block = strings.ReplaceAll(block, "http://127.0.0.1:8080", th.base)
	calls := parseCurls(t, block)
	if len(calls) != 4 {
		t.Fatalf("the README's first job has %d curl commands, want 4 (access_token, create_task, start_encode2, status)", len(calls))
	}
	vars := map[string]string{}
	expand := func(v string) string {
		return os.Expand(v, func(k string) string { return vars[k] })
	}
	var status struct {
		Statuses map[string]struct {
			Status           string `json:"status"`
			ErrorDescription string `json:"error_description"`
			Images           []struct {
				URL     string `json:"url"`
				UserTag string `json:"user_tag"`
			} `json:"images"`
		} `json:"statuses"`
	}
	for i, c := range calls {
		form := url.Values{}
		for k, vs := range c.form {
			for _, v := range vs {
				form.Add(expand(k), expand(v))
			}
		}
		last := i == len(calls)-1
		for deadline := time.Now().Add(60 * time.Second); ; {
			var reply map[string]any
			raw := postRaw(t, th.base, c.path, form)
			if err := json.Unmarshal(raw, &reply); err != nil || reply["error"] != float64(0) {
				t.Fatalf("%s: %s", c.path, raw)
			}
			if c.keep != "" {
				vars[c.keep] = fmt.Sprint(reply[c.jq])
			}
			if !last {
				break
			}
			// The README says to repeat the status command until completed.
			if err := json.Unmarshal(raw, &status); err != nil {
				t.Fatal(err)
			}
			st := status.Statuses[vars["TASK"]]
			if st.Status == "error" {
				t.Fatalf("the task failed: %s", st.ErrorDescription)
			}
			if st.Status == "completed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the task is still %q", st.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	images := status.Statuses[vars["TASK"]].Images
	want := map[string]float64{"15_320x240": 0.15, "50_320x240": 0.50}
	if len(images) != len(want) {
		t.Fatalf("%d images, want %d: %+v", len(images), len(want), images)
	}
	const sampleSeconds = 6.0
	for _, im := range images {
		frac, ok := want[im.UserTag]
		if !ok {
			t.Errorf("image with user_tag %q", im.UserTag)
			continue
		}
		if !strings.HasPrefix(im.URL, th.base+"/storage/"+vars["TASK"]+"/") {
			t.Errorf("image url %s is not kept by thumbd", im.URL)
		}
		resp, err := http.Get(im.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		img, format, err := frametest.Decode(b)
		if err != nil || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
			t.Fatalf("%s: %s %v (%v)", im.URL, format, img.Bounds(), err)
		}
		// 640x360 letterboxed into 320x240.
		n, err := frametest.ClipBand(image.Rect(0, 30, 320, 210)).FrameNumber(img)
		if err != nil {
			t.Fatalf("%s: %v", im.URL, err)
		}
		if wantN := int(math.Ceil(frac*sampleSeconds*25 - 1e-6)); n != wantN {
			t.Errorf("%s shows frame %d, want %d (the first frame at or after %.2f s)", im.UserTag, n, wantN, frac*sampleSeconds)
		}
	}
}

// TestReadmeNodeExample runs the README's Node example (e2e/node/first-job.js)
// through Qencode's SDK: it prints the image URL of a task that completes,
// and the error of one that fails, exiting 1.
func TestReadmeNodeExample(t *testing.T) {
	src, err := os.ReadFile("../../e2e/node/first-job.js")
	if err != nil {
		t.Fatal(err)
	}
	if missing := linesInOrder(readmeBlock(t, "## A first job", "js"), string(src)); missing != "" {
		t.Fatalf("README.md's Node example line %q is not in e2e/node/first-job.js (in that order)", missing)
	}
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.AllowPrivateNetworks = false; c.TestAPI = true }))

	stdout, stderr, code := node(t, "first-job.js", "THUMBD_ENDPOINT="+th.base)
	if code != 0 || !regexp.MustCompile(`^`+regexp.QuoteMeta(th.base)+`/storage/\w+/\S+\.png\n$`).MatchString(stdout) {
		t.Fatalf("first-job.js: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	const why = "the source could not be read (injected)"
	post(t, th.base, "/_thumbd/fail/task", url.Values{"message": {why}}, nil)
	stdout, stderr, code = node(t, "first-job.js", "THUMBD_ENDPOINT="+th.base)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "thumbd task failed: "+why) {
		t.Fatalf("first-job.js on a failing task: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestRunScriptPortTaken runs scripts/run.sh where its port is taken: it
// fails before making the data directory and names the setting that moves
// thumbd.
func TestRunScriptPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds thumbd with go run")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command("bash", "../../scripts/run.sh")
	cmd.Env = append(os.Environ(), "THUMBD_ADDR="+taken.Addr().String(), "THUMBD_DATA_DIR="+data)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("run.sh succeeded on a port in use:\n%s", out)
	}
	if !strings.Contains(string(out), "address already in use") || !strings.Contains(string(out), "THUMBD_ADDR or -addr") {
		t.Errorf("run.sh does not say which setting moves thumbd:\n%s", out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data directory was made before the port was bound (stat: %v)", err)
	}
}
