package api

import (
	"context"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

const testSource = "https://example.com/video.mp4"

// wrap builds a start_encode2 query: {"query": {"source": ..., "format": formats}}.
func wrap(t *testing.T, formats ...map[string]any) string {
	t.Helper()
	return mustJSON(t, map[string]any{"query": map[string]any{"source": testSource, "format": formats}})
}

// start posts a start_encode2 request with the fake task token.
func start(t *testing.T, ts *httptest.Server, query string) reply {
	t.Helper()
	return postForm(t, ts.URL+"/v1/start_encode2", url.Values{"task_token": {fakeTask}, "query": {query}})
}

// startOK starts a task and returns the spec the engine got.
func startOK(t *testing.T, query string) engine.Spec {
	t.Helper()
	ts, fe := newTestServer(t, Config{})
	r := start(t, ts, query)
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("error = %d: %s", code, r.raw)
	}
	sc := fe.lastStart(t)
	if sc.token != fakeTask {
		t.Errorf("engine got task token %q", sc.token)
	}
	return sc.spec
}

func TestStartWrapping(t *testing.T) {
	inner := `{"source":"` + testSource + `","format":[{"output":"thumbnail"}]}`
	tests := []struct {
		name  string
		form  url.Values
		code  int
		parts []string
	}{
		{"not wrapped", url.Values{"query": {inner}}, 19, []string{"query"}},
		{"query missing", url.Values{}, 19, []string{"query"}},
		{"query empty", url.Values{"query": {""}}, 19, nil},
		{"query blank", url.Values{"query": {"  "}}, 19, nil},
		{"inner null", url.Values{"query": {`{"query":null}`}}, 19, nil},
		{"invalid JSON", url.Values{"query": {`{"query": {"source": `}}, 14, nil},
		{"not an object", url.Values{"query": {`[1,2]`}}, 14, nil},
		{"inner not an object", url.Values{"query": {`{"query":"x"}`}}, 14, nil},
		{"payload 1001", url.Values{"query": {`{"query":` + inner + `}`}, "payload": {strings.Repeat("p", 1001)}}, 9, nil},
		{"no task_token", url.Values{"task_token": {""}, "query": {`{"query":` + inner + `}`}}, 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, fe := newTestServer(t, Config{})
			if _, ok := tc.form["task_token"]; !ok {
				tc.form.Set("task_token", fakeTask)
			}
			postForm(t, ts.URL+"/v1/start_encode2", tc.form).wantError(t, tc.code, tc.parts...)
			if n := fe.startCount(); n != 0 {
				t.Errorf("engine.Start called %d times for a bad request", n)
			}
		})
	}
	t.Run("payload 1000 is kept", func(t *testing.T) {
		ts, fe := newTestServer(t, Config{})
		p := strings.Repeat("é", 1000) // characters, not bytes
		r := postForm(t, ts.URL+"/v1/start_encode2", url.Values{"task_token": {fakeTask}, "query": {`{"query":` + inner + `}`}, "payload": {p}})
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
		if got := fe.lastStart(t).spec.Payload; got != p {
			t.Errorf("Payload = %q…, want the 1000 characters sent", got[:10])
		}
	})
}

func TestStartStatusURL(t *testing.T) {
	q := `{"query":{"source":"` + testSource + `","format":[{"output":"thumbnail"}]}}`
	t.Run("from host", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		r := start(t, ts, q)
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
		if got, want := r.str("status_url"), ts.URL+"/v1/status"; got != want {
			t.Errorf("status_url = %q, want %q", got, want)
		}
	})
	t.Run("from PublicURL", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{PublicURL: "https://thumbd.example.com/"})
		r := start(t, ts, q)
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
		if got, want := r.str("status_url"), "https://thumbd.example.com/v1/status"; got != want {
			t.Errorf("status_url = %q, want %q", got, want)
		}
	})
}

// Every numeric field takes both a JSON number and a numeric string.
func TestStartNumbersAndNumericStrings(t *testing.T) {
	thumbs := map[string]any{"output": "thumbnails", "interval": 1}
	sprite := map[string]any{"output": "thumbnails", "interval": 1, "sprite": 1}
	tests := []struct {
		field string
		str   string
		num   any
		base  map[string]any
		check func(o engine.Output) bool
	}{
		{"time", "0.15", 0.15, nil, func(o engine.Output) bool { return o.Time != nil && *o.Time == 0.15 }},
		{"frame_number", "10", 10, nil, func(o engine.Output) bool { return o.FrameNumber != nil && *o.FrameNumber == 10 }},
		{"start_time", "10.5", 10.5, nil, func(o engine.Output) bool { return o.StartTime != nil && *o.StartTime == 10500*time.Millisecond }},
		{"interval", "3", 3, thumbs, func(o engine.Output) bool { return o.Interval == 3*time.Second }},
		{"interval", "0.5", 0.5, thumbs, func(o engine.Output) bool { return o.Interval == 500*time.Millisecond }},
		{"width", "320", 320, nil, func(o engine.Output) bool { return o.Width == 320 && o.Height == 0 }},
		{"height", "240", 240, nil, func(o engine.Output) bool { return o.Height == 240 && o.Width == 0 }},
		{"resolution", "360", 360, nil, func(o engine.Output) bool { return o.Resolution == 360 }},
		{"quality", "80", 80, map[string]any{"output": "thumbnail", "image_format": "jpg"}, func(o engine.Output) bool { return o.Quality == 80 }},
		{"columns", "5", 5, sprite, func(o engine.Output) bool { return o.Columns == 5 && o.Sprite }},
		{"rows", "4", 4, sprite, func(o engine.Output) bool { return o.Rows == 4 && o.Sprite }},
		{"sprite", "1", 1, thumbs, func(o engine.Output) bool { return o.Sprite }},
		{"sprite", "0", 0, thumbs, func(o engine.Output) bool { return !o.Sprite }},
	}
	for _, tc := range tests {
		for _, v := range []any{tc.str, tc.num} {
			name := tc.field + "=" + mustJSON(t, v)
			t.Run(name, func(t *testing.T) {
				f := map[string]any{"output": "thumbnail"}
				for k, x := range tc.base {
					f[k] = x
				}
				f[tc.field] = v
				spec := startOK(t, wrap(t, f))
				if len(spec.Outputs) != 1 {
					t.Fatalf("got %d outputs", len(spec.Outputs))
				}
				if o := spec.Outputs[0]; !tc.check(o) {
					t.Errorf("decoded output %+v does not hold %s", o, name)
				}
			})
		}
	}
}

// A non-numeric string in a numeric field is error 14 naming the field.
func TestStartNonNumeric(t *testing.T) {
	fields := []struct {
		field string
		base  map[string]any
	}{
		{"time", nil}, {"frame_number", nil}, {"start_time", nil}, {"width", nil}, {"height", nil},
		{"resolution", nil}, {"quality", nil},
		{"interval", map[string]any{"output": "thumbnails"}},
		{"columns", map[string]any{"output": "thumbnails", "interval": 1, "sprite": 1}},
		{"rows", map[string]any{"output": "thumbnails", "interval": 1, "sprite": 1}},
		{"sprite", map[string]any{"output": "thumbnails", "interval": 1}},
	}
	for _, tc := range fields {
		for _, bad := range []any{"abc", "12px", map[string]any{"v": 1}, []any{1}} {
			if _, list := bad.([]any); list && tc.field == "time" {
				continue // a list of times is one image per time
			}
			t.Run(tc.field+"="+mustJSON(t, bad), func(t *testing.T) {
				ts, fe := newTestServer(t, Config{})
				f := map[string]any{"output": "thumbnail"}
				for k, x := range tc.base {
					f[k] = x
				}
				f[tc.field] = bad
				start(t, ts, wrap(t, f)).wantError(t, 14, "format[0]."+tc.field)
				if fe.startCount() != 0 {
					t.Error("engine.Start called")
				}
			})
		}
	}
	t.Run("second format is named", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, wrap(t, map[string]any{"output": "thumbnail"}, map[string]any{"output": "thumbnail", "width": "wide"})).
			wantError(t, 14, "format[1].width")
	})
}

func TestStartSizesAndFormats(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		o := startOK(t, wrap(t, map[string]any{"output": "thumbnail", "size": "320x240"})).Outputs[0]
		if o.Width != 320 || o.Height != 240 {
			t.Errorf("size 320x240 → %dx%d", o.Width, o.Height)
		}
	})
	t.Run("bad size", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, wrap(t, map[string]any{"output": "thumbnail", "size": "320by240"})).wantError(t, 14, "format[0].size")
	})
	t.Run("resolution", func(t *testing.T) {
		o := startOK(t, wrap(t, map[string]any{"output": "thumbnail", "resolution": "480"})).Outputs[0]
		if o.Resolution != 480 {
			t.Errorf("Resolution = %d, want 480", o.Resolution)
		}
	})
	t.Run("resize_mode crop", func(t *testing.T) {
		o := startOK(t, wrap(t, map[string]any{"output": "thumbnail", "resize_mode": "crop"})).Outputs[0]
		if o.ResizeMode != engine.ResizeCrop {
			t.Errorf("ResizeMode = %q", o.ResizeMode)
		}
	})
	for _, tc := range []struct {
		in   string
		want engine.ImageFormat
	}{
		{"", engine.PNG}, {"png", engine.PNG}, {"jpg", engine.JPEG}, {"jpeg", engine.JPEG},
		{"JPG", engine.JPEG}, {"webp", engine.WebP},
	} {
		t.Run("image_format="+tc.in, func(t *testing.T) {
			o := startOK(t, wrap(t, map[string]any{"output": "thumbnail", "image_format": tc.in})).Outputs[0]
			if o.Format != tc.want {
				t.Errorf("Format = %q, want %q", o.Format, tc.want)
			}
		})
	}
	for _, bad := range []string{"gif", "tiff"} {
		t.Run("image_format="+bad, func(t *testing.T) {
			ts, _ := newTestServer(t, Config{})
			start(t, ts, wrap(t, map[string]any{"output": "thumbnail", "image_format": bad})).
				wantError(t, 14, "format[0].image_format", bad)
		})
	}
	t.Run("output advanced_hls", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, wrap(t, map[string]any{"output": "advanced_hls"})).wantError(t, 14, "advanced_hls", "format[0].output")
	})
	t.Run("output missing", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, wrap(t, map[string]any{"width": 10})).wantError(t, 14, "format[0].output")
	})
	t.Run("stitch", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		q := mustJSON(t, map[string]any{"query": map[string]any{
			"stitch": []string{"https://example.com/a.mp4", "https://example.com/b.mp4"},
			"format": []any{map[string]any{"output": "thumbnail"}},
		}})
		start(t, ts, q).wantError(t, 14, "stitch")
	})
	t.Run("source missing", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, `{"query":{"format":[{"output":"thumbnail"}]}}`).wantError(t, 14, "source")
	})
	t.Run("format missing", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		start(t, ts, `{"query":{"source":"`+testSource+`"}}`).wantError(t, 14, "format")
	})
	t.Run("format as one object", func(t *testing.T) {
		spec := startOK(t, `{"query":{"source":"`+testSource+`","format":{"output":"thumbnail","width":"100"}}}`)
		if len(spec.Outputs) != 1 || spec.Outputs[0].Width != 100 {
			t.Errorf("outputs = %+v", spec.Outputs)
		}
	})
	t.Run("source and callback", func(t *testing.T) {
		spec := startOK(t, `{"query":{"source":" `+testSource+` ","callback_url":"https://cb.example/x","format":[{"output":"thumbnail"}]}}`)
		if spec.Source != testSource || spec.CallbackURL != "https://cb.example/x" {
			t.Errorf("Source %q, CallbackURL %q", spec.Source, spec.CallbackURL)
		}
	})
}

func TestStartDestinations(t *testing.T) {
	d1 := map[string]any{"url": "s3://s3.example.com/bucket/thumb/a.png", "key": "AK", "secret": "SK",
		"permissions": "public-read", "storage_class": "STANDARD_IA", "cache_control": "max-age=60"}
	d2 := map[string]any{"url": "s3://other.example.com:9000/b2/c/"}
	want1 := storage.Destination{URL: "s3://s3.example.com/bucket/thumb/a.png", Key: "AK", Secret: "SK",
		Permissions: "public-read", StorageClass: "STANDARD_IA", CacheControl: "max-age=60"}
	want2 := storage.Destination{URL: "s3://other.example.com:9000/b2/c/"}
	tests := []struct {
		name string
		dest any
		omit bool
		want []storage.Destination
	}{
		{"object", d1, false, []storage.Destination{want1}},
		{"array of two", []any{d1, d2}, false, []storage.Destination{want1, want2}},
		{"empty string", "", false, nil},
		{"null", nil, false, nil},
		{"absent", nil, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := map[string]any{"output": "thumbnail"}
			if !tc.omit {
				f["destination"] = tc.dest
			}
			got := startOK(t, wrap(t, f)).Outputs[0].Destinations
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Destinations = %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		dest  any
		field string
	}{
		{"object without url", map[string]any{"key": "AK", "secret": "SK"}, "format[0].destination.url"},
		{"object with empty url", map[string]any{"url": " "}, "format[0].destination.url"},
		{"array entry without url", []any{d1, map[string]any{"key": "x"}}, "format[0].destination[1].url"},
		{"not s3", map[string]any{"url": "https://example.com/x.png"}, "format[0].destination.url"},
		{"a number", 5, "format[0].destination"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := newTestServer(t, Config{})
			start(t, ts, wrap(t, map[string]any{"output": "thumbnail", "destination": tc.dest})).wantError(t, 14, tc.field)
		})
	}
}

func TestStartUserTag(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    map[string]any
		want string
	}{
		{"user_tag", map[string]any{"user_tag": "15_320x240"}, "15_320x240"},
		{"tag", map[string]any{"tag": "my-tag"}, "my-tag"},
		{"both: user_tag wins", map[string]any{"user_tag": "u", "tag": "t"}, "u"},
		{"numeric", map[string]any{"user_tag": 42}, "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f["output"] = "thumbnail"
			if got := startOK(t, wrap(t, tc.f)).Outputs[0].UserTag; got != tc.want {
				t.Errorf("UserTag = %q, want %q", got, tc.want)
			}
		})
	}
}

// The docs' own example query decodes whole: its mp4 output and two
// thumbnails.
func TestStartSeedQuery(t *testing.T) {
	spec := startOK(t, seedQuery(t))
	if spec.Source != "https://qa.qencode.com/static/test_mini.mp4" {
		t.Errorf("Source = %q", spec.Source)
	}
	if len(spec.Outputs) != 3 {
		t.Fatalf("got %d outputs, want 3", len(spec.Outputs))
	}
	if o := spec.Outputs[0]; o.Kind != engine.KindMP4 || len(o.Destinations) != 1 ||
		o.Destinations[0].URL != "s3://nyc3.digitaloceanspaces.com/qencode3/test/test_mini.mp4" {
		t.Errorf("output 0 = %+v", o)
	}
	spec.Outputs = spec.Outputs[1:]
	for i, want := range []struct {
		time float64
		tag  string
		url  string
	}{
		{0.15, "15_320x240", "s3://nyc3.digitaloceanspaces.com/qencode3/test/thumb/15_320x240.png"},
		{0.50, "50_320x240", "s3://nyc3.digitaloceanspaces.com/qencode3/test/thumb/50_320x240.png"},
	} {
		o := spec.Outputs[i]
		if o.Kind != engine.KindThumbnail || o.Time == nil || *o.Time != want.time || o.Width != 320 || o.Height != 240 ||
			o.UserTag != want.tag || o.Format != engine.PNG {
			t.Errorf("output %d = %+v", i, o)
		}
		wantDest := []storage.Destination{{URL: want.url, Key: "abcde12345", Secret: "abcde12345", Permissions: "public-read"}}
		if !reflect.DeepEqual(o.Destinations, wantDest) {
			t.Errorf("output %d destinations = %+v", i, o.Destinations)
		}
	}
}

// Bodies arrive form-encoded with %20 or +, as raw un-encoded JSON, and as
// JSON documents whose query is a string or an object.
func TestStartBodyEncodings(t *testing.T) {
	q := `{"query":{"source":"` + testSource + `","format":[{"output":"thumbnail","user_tag":"a b"}]}}`
	check := func(t *testing.T, fe *fakeEngine, r reply) {
		t.Helper()
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("error = %d: %s", code, r.raw)
		}
		sc := fe.lastStart(t)
		if sc.token != fakeTask || len(sc.spec.Outputs) != 1 || sc.spec.Outputs[0].UserTag != "a b" || sc.spec.Payload != "my payload" {
			t.Errorf("engine got %+v", sc)
		}
	}
	bodies := map[string]string{
		"form %20": "task_token=" + fakeTask + "&payload=my%20payload&query=" + strings.ReplaceAll(url.QueryEscape(q), "+", "%20"),
		"form +":   "task_token=" + fakeTask + "&payload=my+payload&query=" + url.QueryEscape(q),
		"raw JSON": "task_token=" + fakeTask + "&payload=my+payload&query=" + strings.ReplaceAll(q, " ", "+"),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			ts, fe := newTestServer(t, Config{})
			req := newRequest(t, "POST", ts.URL+"/v1/start_encode2", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			check(t, fe, do(t, req))
		})
	}
	t.Run("JSON query string", func(t *testing.T) {
		ts, fe := newTestServer(t, Config{})
		check(t, fe, postJSON(t, ts.URL+"/v1/start_encode2",
			mustJSON(t, map[string]any{"task_token": fakeTask, "payload": "my payload", "query": q})))
	})
	t.Run("JSON query object", func(t *testing.T) {
		ts, fe := newTestServer(t, Config{})
		body := `{"task_token":"` + fakeTask + `","payload":"my payload","query":` + q + `}`
		check(t, fe, postJSON(t, ts.URL+"/v1/start_encode2", body))
	})
	t.Run("JSON charset", func(t *testing.T) {
		ts, fe := newTestServer(t, Config{})
		req := newRequest(t, "POST", ts.URL+"/v1/start_encode2",
			strings.NewReader(mustJSON(t, map[string]any{"task_token": fakeTask, "payload": "my payload", "query": q})))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		check(t, fe, do(t, req))
	})
	t.Run("bad JSON body", func(t *testing.T) {
		ts, _ := newTestServer(t, Config{})
		postJSON(t, ts.URL+"/v1/start_encode2", `{"task_token":`).wantError(t, 14, "JSON")
	})
}

func TestStartRealEngine(t *testing.T) {
	eng := engine.New(engine.Config{WorkDir: t.TempDir()})
	ts, _ := newTestServer(t, Config{Engine: eng})
	access, _, err := eng.NewSession(context.Background(), "5a2a846a26ace1")
	if err != nil {
		t.Fatal(err)
	}
	tt, err := eng.CreateTask(context.Background(), access)
	if err != nil {
		t.Fatal(err)
	}
	q := `{"query":{"source":"` + testSource + `","format":[{"output":"thumbnail","time":"0.5"}]}}`
	post := func(token string) reply {
		return postForm(t, ts.URL+"/v1/start_encode2", url.Values{"task_token": {token}, "query": {q}, "payload": {"pl"}})
	}
	post("nothex").wantError(t, 4)
	r := post(strings.Repeat("b", 32))
	r.wantError(t, 5)
	if r.str("message") != "Token not found" {
		t.Errorf("unknown task token: message = %q, want exactly \"Token not found\"", r.str("message"))
	}

	r = post(tt)
	if code := r.apiCode(t); code != 0 {
		t.Fatalf("first start: error = %d: %s", code, r.raw)
	}
	if got, want := r.str("status_url"), ts.URL+"/v1/status"; got != want {
		t.Errorf("status_url = %q, want %q", got, want)
	}
	post(tt).wantError(t, 4)

	// Its status is the real engine's: queued, with the payload echoed.
	s := postForm(t, ts.URL+"/v1/status", url.Values{"task_tokens[]": {tt}})
	if code := s.apiCode(t); code != 0 {
		t.Fatalf("status: error = %d: %s", code, s.raw)
	}
	st, _ := s.body["statuses"].(map[string]any)[tt].(map[string]any)
	if st["status"] != "queued" || st["payload"] != "pl" {
		t.Errorf("status = %v", st)
	}
}

// Integer fields refuse fractions, naming the field.
func TestStartWholeNumbers(t *testing.T) {
	for _, tc := range []struct {
		field string
		v     any
		base  map[string]any
	}{
		{"width", "320.5", nil},
		{"height", 240.5, nil},
		{"resolution", "0", nil},
		{"width", "-1", nil},
		{"frame_number", "1.5", nil},
		{"quality", "0", map[string]any{"image_format": "jpg"}},
		{"quality", "101", map[string]any{"image_format": "jpg"}},
		{"columns", "2.5", map[string]any{"output": "thumbnails", "interval": 1, "sprite": 1}},
		{"interval", "0", map[string]any{"output": "thumbnails"}},
		{"sprite", "2", map[string]any{"output": "thumbnails", "interval": 1}},
		{"columns", "4", map[string]any{"output": "thumbnails", "interval": 1}}, // needs sprite
	} {
		t.Run(tc.field+"="+mustJSON(t, tc.v), func(t *testing.T) {
			ts, _ := newTestServer(t, Config{})
			f := map[string]any{"output": "thumbnail"}
			for k, x := range tc.base {
				f[k] = x
			}
			f[tc.field] = tc.v
			start(t, ts, wrap(t, f)).wantError(t, 14, "format[0]."+tc.field)
		})
	}
	t.Run("whole float accepted", func(t *testing.T) {
		if o := startOK(t, wrap(t, map[string]any{"output": "thumbnail", "width": "320.0", "height": 2.4e2})).Outputs[0]; o.Width != 320 || o.Height != 240 {
			t.Errorf("got %dx%d", o.Width, o.Height)
		}
	})
}
