package thumbdtest_test

import (
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/thumbd/thumbd/thumbdtest"
)

// qencode posts form fields to a Qencode-style endpoint and decodes its
// JSON reply into v, the way an integration with plain net/http does.
func qencode(base, path string, form url.Values, v any) {
	resp, err := http.PostForm(base+path, form)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Error   int
		Message string
	}
	raw := json.RawMessage{}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Error != 0 {
		log.Fatalf("%s: error %d: %s", path, reply.Error, reply.Message)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			log.Fatal(err)
		}
	}
}

// status is the part of a task's status this file reads.
type status struct {
	Status           string
	ErrorDescription string `json:"error_description"`
	Images           []struct {
		Tag, URL, Kind string
		Width, Height  int
	}
}

// startTask gets a token, creates a task and starts it with query: what an
// application does against Qencode. payload, if given, comes back in the
// task's status and callbacks. It returns the task token.
func startTask(srv *thumbdtest.Server, query string, payload ...string) string {
	var auth struct{ Token string }
	qencode(srv.URL, "/v1/access_token", url.Values{"api_key": {srv.APIKey}}, &auth)
	var task struct {
		TaskToken string `json:"task_token"`
	}
	qencode(srv.URL, "/v1/create_task", url.Values{"token": {auth.Token}}, &task)
	qencode(srv.URL, "/v1/start_encode2", url.Values{"task_token": {task.TaskToken}, "query": {query}, "payload": payload}, nil)
	return task.TaskToken
}

// readStatus reads a task's status once.
func readStatus(srv *thumbdtest.Server, token string) status {
	var reply struct{ Statuses map[string]status }
	qencode(srv.URL, "/v1/status", url.Values{"task_tokens[]": {token}}, &reply)
	return reply.Statuses[token]
}

// Drive thumbd the way a Qencode integration does, with a plain net/http
// client: access_token, create_task, start_encode2, then poll status until
// the task ends, and fetch the thumbnail it made. The source is the
// repository's sample clip (640x360, 10 s) on an httptest server; ffmpeg
// does the work.
func Example_qencodeIntegration() {
	srv, err := thumbdtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	videos := httptest.NewServer(http.FileServer(http.Dir("../testdata")))
	defer videos.Close()

	token := startTask(srv, `{"query": {
		"source": "`+videos.URL+`/clip.mp4",
		"format": [
			{"output": "thumbnail", "time": "0.5", "width": 320, "user_tag": "poster"},
			{"output": "thumbnails", "interval": 5, "width": 160, "image_format": "jpg"}
		]}}`)
	var st status
	for st = readStatus(srv, token); st.Status != "completed" && st.Status != "error"; st = readStatus(srv, token) {
		time.Sleep(100 * time.Millisecond)
	}
	if st.Status != "completed" {
		log.Fatalf("task ended in %s: %s", st.Status, st.ErrorDescription)
	}
	for _, im := range st.Images {
		fmt.Printf("%s %s %dx%d\n", im.Tag, im.Kind, im.Width, im.Height)
	}

	// The thumbnail is served by thumbd itself, as Qencode serves its own.
	resp, err := http.Get(st.Images[0].URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	cfg, format, err := image.DecodeConfig(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fetched a %dx%d %s\n", cfg.Width, cfg.Height, format)
	// Output:
	// image-0-0 image 320x180
	// image-1-0 image 160x90
	// image-1-1 image 160x90
	// image-1-2 vtt 0x0
	// fetched a 320x180 png
}

// Hold tasks for one status read in each state, so that polling sees
// every state on any machine, without sleeps.
func ExampleServer_Hold() {
	srv, err := thumbdtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	videos := httptest.NewServer(http.FileServer(http.Dir("../testdata")))
	defer videos.Close()

	for _, st := range []thumbdtest.State{thumbdtest.Queued, thumbdtest.Encoding} {
		if _, err := srv.Hold(thumbdtest.Hold{State: st, Polls: 1}); err != nil {
			log.Fatal(err)
		}
	}
	token := startTask(srv, `{"query": {"source": "`+videos.URL+`/clip.mp4",
		"format": [{"output": "thumbnail", "time": "0.5", "width": 320}]}}`)
	for range 3 {
		fmt.Println(readStatus(srv, token).Status)
	}
	// Output:
	// queued
	// encoding
	// completed
}

// Make the next task fail, to test how the code under test reports a
// failed job.
func ExampleServer_FailTask() {
	srv, err := thumbdtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	videos := httptest.NewServer(http.FileServer(http.Dir("../testdata")))
	defer videos.Close()

	if _, err := srv.FailTask(thumbdtest.TaskFault{Message: "Source file is unavailable"}); err != nil {
		log.Fatal(err)
	}
	token := startTask(srv, `{"query": {"source": "`+videos.URL+`/clip.mp4",
		"format": [{"output": "thumbnail", "time": "0.5"}]}}`)
	st := readStatus(srv, token)
	for ; st.Status != "completed" && st.Status != "error"; st = readStatus(srv, token) {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println(st.Status+":", st.ErrorDescription)
	// Output:
	// error: Source file is unavailable
}

// Read the callbacks thumbd sent to callback_url, with the payload and
// status of each, whether or not anything listens there; make the first
// attempt fail to test a receiver's retries.
func ExampleServer_Callbacks() {
	srv, err := thumbdtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	videos := httptest.NewServer(http.FileServer(http.Dir("../testdata")))
	defer videos.Close()
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hooks.Close()

	if err := srv.FailCallbacks(1, 503); err != nil {
		log.Fatal(err)
	}
	token := startTask(srv, `{"query": {"source": "`+videos.URL+`/clip.mp4",
		"callback_url": "`+hooks.URL+`/qencode",
		"format": [{"output": "thumbnail", "time": "0.5"}]}}`, "order-1234")
	callbacks, err := srv.WaitCallbacks(token, 2, 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range callbacks {
		var st struct{ Status string }
		if err := json.Unmarshal([]byte(c.Fields["status"]), &st); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: status %s, payload %s, %d attempts, first injected: %v, delivered: %v\n",
			c.Event, st.Status, c.Fields["payload"], len(c.Attempts), c.Attempts[0].Injected, c.Delivered)
	}
	// Output:
	// queued: status queued, payload order-1234, 2 attempts, first injected: true, delivered: true
	// saved: status completed, payload order-1234, 1 attempts, first injected: false, delivered: true
}
