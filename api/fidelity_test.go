package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// decode runs decodeQuery on one format entry.
func decodeOne(t *testing.T, f map[string]any) (engine.Spec, error) {
	t.Helper()
	return decodeQuery(wrap(t, f))
}

func TestDecodeIntervalOnThumbnail(t *testing.T) {
	cases := []struct {
		name string
		f    map[string]any
		kind engine.OutputKind
		warn string // a warning's details must hold it; "" none
	}{
		{"interval makes a series", map[string]any{"output": "thumbnail", "interval": 10}, engine.KindThumbnails, ""},
		{"interval as a string", map[string]any{"output": "thumbnail", "interval": "2.5"}, engine.KindThumbnails, ""},
		{"no interval: one image", map[string]any{"output": "thumbnail", "time": "0.5"}, engine.KindThumbnail, ""},
		{"null interval: one image", map[string]any{"output": "thumbnail", "interval": nil}, engine.KindThumbnail, ""},
		{"time is ignored on a series", map[string]any{"output": "thumbnail", "interval": 10, "time": 0.5}, engine.KindThumbnails, "format[0].time is ignored"},
		{"sprite with interval", map[string]any{"output": "thumbnail", "interval": 1, "sprite": 1}, engine.KindThumbnails, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := decodeOne(t, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			o := spec.Outputs[0]
			if o.Kind != tc.kind {
				t.Errorf("kind = %q, want %q", o.Kind, tc.kind)
			}
			if o.Kind == engine.KindThumbnails && (o.Time != nil || o.Times != nil) {
				t.Errorf("a series kept time %v %v", o.Time, o.Times)
			}
			checkWarning(t, spec.Warnings, tc.warn)
		})
	}
	if _, err := decodeOne(t, map[string]any{"output": "thumbnail", "interval": 0}); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("interval 0: error %v, want one naming interval", err)
	}
}

func checkWarning(t *testing.T, ws []engine.Warning, want string) {
	t.Helper()
	if want == "" {
		if len(ws) != 0 {
			t.Errorf("warnings %+v, want none", ws)
		}
		return
	}
	if !slices.ContainsFunc(ws, func(w engine.Warning) bool { return strings.Contains(w.Details, want) }) {
		t.Errorf("warnings %+v, want one saying %q", ws, want)
	}
}

func TestDecodeTimesAndSizes(t *testing.T) {
	cases := []struct {
		name  string
		f     map[string]any
		times []float64
		time  *float64
		sizes []engine.Size
		w, h  int
		warn  string
		err   string // the error must hold it; "" none
	}{
		{name: "JSON array of strings", f: map[string]any{"time": []any{"0.1", "0.5"}}, times: []float64{0.1, 0.5}},
		{name: "JSON array of numbers", f: map[string]any{"time": []any{0.25, 0.75, 1}}, times: []float64{0.25, 0.75, 1}},
		{name: "comma-separated string", f: map[string]any{"time": "0.1, 0.5"}, times: []float64{0.1, 0.5}},
		{name: "one-entry list is one time", f: map[string]any{"time": []any{"0.3"}}, time: ptr(0.3)},
		{name: "one time as before", f: map[string]any{"time": "0.50"}, time: ptr(0.5)},
		{name: "sizes array", f: map[string]any{"size": []any{"320x240", "640x480"}}, sizes: []engine.Size{{W: 320, H: 240}, {W: 640, H: 480}}},
		{name: "sizes comma-separated", f: map[string]any{"size": "320x240,160X90"}, sizes: []engine.Size{{W: 320, H: 240}, {W: 160, H: 90}}},
		{name: "one size as before", f: map[string]any{"size": "320x240"}, w: 320, h: 240},
		{name: "one size loses to width", f: map[string]any{"size": "320x240", "width": 100}, w: 100},
		{name: "size list wins over width and height", f: map[string]any{"size": []any{"320x240", "640x480"}, "width": 100, "height": 50},
			sizes: []engine.Size{{W: 320, H: 240}, {W: 640, H: 480}}, warn: "format[0].width is ignored: a list of sizes"},
		{name: "size list wins over resolution", f: map[string]any{"size": "320x240,640x480", "resolution": 100},
			sizes: []engine.Size{{W: 320, H: 240}, {W: 640, H: 480}}, warn: "format[0].resolution is ignored"},
		{name: "times and sizes", f: map[string]any{"time": "0.1,0.9", "size": []any{"320x240", "640x480"}},
			times: []float64{0.1, 0.9}, sizes: []engine.Size{{W: 320, H: 240}, {W: 640, H: 480}}},
		{name: "frame_number wins over a time list", f: map[string]any{"time": []any{"0.1", "0.5"}, "frame_number": 3},
			warn: "format[0].time is ignored: frame_number wins"},
		{name: "start_time wins over a time list", f: map[string]any{"time": "0.1,0.5", "start_time": 2},
			warn: "format[0].time is ignored: start_time wins"},
		{name: "bad time in a list", f: map[string]any{"time": []any{"0.1", "abc"}}, err: "format[0].time"},
		{name: "empty entry in a list", f: map[string]any{"time": "0.1,,0.5"}, err: "format[0].time"},
		{name: "time out of range in a list", f: map[string]any{"time": []any{0.1, 1.5}}, err: "format[0].time"},
		{name: "a time twice", f: map[string]any{"time": []any{"0.5", 0.5}}, err: "lists 0.5 twice"},
		{name: "bad size in a list", f: map[string]any{"size": []any{"320x240", "big"}}, err: "format[0].size"},
		{name: "a size twice", f: map[string]any{"size": "320x240,320X240"}, err: "lists 320x240 twice"},
		{name: "sizes on a series", f: map[string]any{"output": "thumbnails", "interval": 1, "size": "320x240,640x480"}, err: "format[0].size"},
		{name: "times on a video", f: map[string]any{"output": "mp4", "size": []any{"320x240", "640x480"}}, err: "format[0].size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := map[string]any{"output": "thumbnail"}
			for k, v := range tc.f {
				f[k] = v
			}
			spec, err := decodeOne(t, f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one holding %q", err, tc.err)
				}
				if toError(err).Code != codeFieldRequired {
					t.Errorf("code %d, want 14", toError(err).Code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := spec.Outputs[0]
			if !slices.Equal(o.Times, tc.times) || !slices.Equal(o.Sizes, tc.sizes) {
				t.Errorf("times %v sizes %v, want %v %v", o.Times, o.Sizes, tc.times, tc.sizes)
			}
			if (o.Time == nil) != (tc.time == nil) || o.Time != nil && *o.Time != *tc.time {
				t.Errorf("time %v, want %v", o.Time, tc.time)
			}
			if o.Width != tc.w || o.Height != tc.h {
				t.Errorf("width %d height %d, want %d %d", o.Width, o.Height, tc.w, tc.h)
			}
			checkWarning(t, spec.Warnings, tc.warn)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeMetadata(t *testing.T) {
	spec, err := decodeOne(t, map[string]any{"output": "metadata", "metadata_version": "4.1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.Outputs[0]; o.Kind != engine.KindMetadata || len(spec.Warnings) != 0 {
		t.Errorf("output %+v warnings %+v", o, spec.Warnings)
	}
	spec, err = decodeOne(t, map[string]any{"output": "metadata", "destination": map[string]any{"url": "s3://h/b/meta.json"}, "user_tag": "m"})
	if err != nil {
		t.Fatal(err)
	}
	if o := spec.Outputs[0]; len(o.Destinations) != 1 || o.UserTag != "m" {
		t.Errorf("output %+v", o)
	}
}

func TestDecodeManifestField(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want bool
		err  bool
	}{{1, true, false}, {"1", true, false}, {0, false, false}, {true, true, false}, {2, false, true}} {
		spec, err := decodeOne(t, map[string]any{"output": "thumbnail", "manifest": tc.v})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "format[0].manifest") {
				t.Errorf("manifest %v: error %v", tc.v, err)
			}
			continue
		}
		if err != nil || spec.Outputs[0].Manifest != tc.want || len(spec.Warnings) != 0 {
			t.Errorf("manifest %v: %v, %+v, warnings %+v", tc.v, err, spec.Outputs[0], spec.Warnings)
		}
	}
}

func TestDecodeUnknownFields(t *testing.T) {
	cases := []struct {
		name  string
		query map[string]any
		warns []string // each warning's details, in order
	}{
		{"typo of width", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "widht": 100}}},
			[]string{`format[0].widht is not a Qencode field and was ignored; did you mean "width"?`}},
		{"typo of interval", map[string]any{"format": []any{map[string]any{"output": "thumbnails", "interval": 1, "intreval": 2}}},
			[]string{`format[0].intreval is not a Qencode field and was ignored; did you mean "interval"?`}},
		{"wrong case", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "Width": 100}}},
			[]string{`format[0].Width is not a Qencode field and was ignored; did you mean "width"?`}},
		{"nothing near", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "colour_grading": 1}}},
			[]string{`format[0].colour_grading is not a Qencode field and was ignored`}},
		{"the Python SDK's resize_mod", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "resize_mod": "crop"}}},
			[]string{`format[0].resize_mod is not a Qencode field and was ignored; did you mean "resize_mode"?`}},
		{"second output, sorted", map[string]any{"format": []any{map[string]any{"output": "thumbnail"},
			map[string]any{"output": "thumbnail", "zz": 1, "heigth": 2}}},
			[]string{`format[1].heigth is not a Qencode field and was ignored; did you mean "height"?`, `format[1].zz is not a Qencode field and was ignored`}},
		{"top level", map[string]any{"callbak_url": "http://x", "format": []any{map[string]any{"output": "thumbnail"}}},
			[]string{`callbak_url is not a Qencode field and was ignored; did you mean "callback_url"?`}},
		{"destination", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "destination": map[string]any{"url": "s3://h/b/k.png", "secrett": "x"}}}},
			[]string{`format[0].destination.secrett is not a Qencode field and was ignored; did you mean "secret"?`}},
		{"destination list", map[string]any{"format": []any{map[string]any{"output": "thumbnail", "destination": []any{map[string]any{"url": "s3://h/b/k.png"}, map[string]any{"url": "s3://h/b/l.png", "premissions": "public-read"}}}}},
			[]string{`format[0].destination[1].premissions is not a Qencode field and was ignored; did you mean "permissions"?`}},
		{"Qencode and thumbd fields are known", map[string]any{"encoder_version": 2, "upscale": 1, "retry_on_error": 1, "format": []any{map[string]any{
			"output": "thumbnail", "tag": "t", "user_tag": "u", "accuracy": "exact", "manifest": 0, "allow_soft_fail": 0, "file_extension": "png",
			"destination": map[string]any{"url": "s3://h/b/k.png", "is_passive": 0, "use_tls": 1, "tcp_port": 0, "cache_control": "no-cache"}}}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := map[string]any{"source": testSource}
			for k, v := range tc.query {
				q[k] = v
			}
			spec, err := decodeQuery(mustJSON(t, map[string]any{"query": q}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range spec.Warnings {
				if w.Message != "Unknown field" {
					t.Errorf("message %q", w.Message)
				}
				got = append(got, w.Details)
			}
			if !slices.Equal(got, tc.warns) {
				t.Errorf("warnings\n%q\nwant\n%q", got, tc.warns)
			}
		})
	}
	// A Qencode field thumbd does not implement is still refused by name.
	_, err := decodeOne(t, map[string]any{"output": "thumbnail", "rotate": 90})
	if e := toError(err); e.Code != 14 || !strings.Contains(e.Message, "format[0].rotate: is not supported by thumbd") {
		t.Errorf("rotate: %v", err)
	}
}

func TestNearest(t *testing.T) {
	known := []string{"width", "height", "time", "tag", "size", "interval", "resize_mode", "resolution"}
	for _, tc := range []struct{ in, want string }{
		{"widht", "width"}, {"wdth", "width"}, {"hieght", "height"}, {"tim", "time"}, {"tags", "tag"},
		{"siz", "size"}, {"sizes", "size"}, {"xyz", ""}, {"intervals", "interval"}, {"resolutoin", "resolution"},
		{"colour", ""}, {"RESIZE_MODE", "resize_mode"},
	} {
		if got := nearest(tc.in, known); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := editDistance("widht", "width"); d != 1 {
		t.Errorf("a swap counts %d edits, want 1", d)
	}
}

// Every field the decoders read is in the tables of known fields.
func TestKnownFieldsCoverDecoders(t *testing.T) {
	var f wireFormat
	var v wireVideo
	for _, m := range []map[string]any{f.fields(), v.fields()} {
		for k := range m {
			if !slices.Contains(formatFields, k) && !slices.Contains(ownFormatFields, k) {
				t.Errorf("decoded field %q is not in formatFields or ownFormatFields", k)
			}
		}
	}
	for _, k := range unsupportedFields {
		if !slices.Contains(formatFields, k) {
			t.Errorf("refused field %q is not in formatFields", k)
		}
	}
	for _, k := range append(slices.Clone(unsupportedQueryFields), "source", "stitch", "format", "callback_url") {
		if !slices.Contains(queryFields, k) {
			t.Errorf("query field %q is not in queryFields", k)
		}
	}
	for _, k := range []string{"url", "key", "secret", "permissions", "storage_class", "cache_control"} {
		if !slices.Contains(destinationFields, k) {
			t.Errorf("destination field %q is not in destinationFields", k)
		}
	}
}

func TestEveryAPIPathAnswersInTheEnvelope(t *testing.T) {
	ts, _ := newTestServer(t, Config{})
	cases := []struct {
		method, path string
	}{
		{http.MethodPost, "/v1/nope"}, {http.MethodGet, "/v1/nope"}, {http.MethodPut, "/v1/nope"},
		{http.MethodDelete, "/v1/status"}, {http.MethodPut, "/v1/start_encode2"}, {http.MethodPatch, "/v1/access_token"},
		{http.MethodPost, "/v1/tasks"}, {http.MethodPost, "/v1.1/nope"}, {http.MethodPost, "/v1"}, {http.MethodPost, "/v1.1"},
		{http.MethodDelete, "/v1/request_templates"},
	}
	for _, tc := range cases {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			r := do(t, newRequest(t, tc.method, ts.URL+tc.path, nil))
			r.wantError(t, codeNoMethod, tc.path)
		})
	}
	// Outside the API an unknown path is still a 404.
	if r := get(t, ts.URL+"/nope"); r.status != http.StatusNotFound || !r.isJSON() {
		t.Errorf("/nope: %d %s", r.status, r.raw)
	}
}

func TestRequestTemplates(t *testing.T) {
	ts, fe := newTestServer(t, Config{})
	for _, p := range []string{"/v1/request_templates", "/v1.1/request_templates"} {
		r := postForm(t, ts.URL+p, url.Values{"api_key": {"my-project-key-0001"}})
		if code := r.apiCode(t); code != 0 {
			t.Fatalf("%s: error %d: %s", p, code, r.raw)
		}
		if tpl, ok := r.body["templates"].([]any); !ok || len(tpl) != 0 {
			t.Errorf("%s: templates = %#v, want []", p, r.body["templates"])
		}
	}
	if !slices.Contains(fe.keys, "my-project-key-0001") {
		t.Errorf("the key was not checked: %v", fe.keys)
	}
	postForm(t, ts.URL+"/v1/request_templates", url.Values{}).wantError(t, codeBadAPIKey, "api_key")
	fe.sessionErr = engine.ErrUnknownAPIKey
	postForm(t, ts.URL+"/v1/request_templates", url.Values{"api_key": {"another-key-00001"}}).wantError(t, codeAPIKeyUnknown)
}

func TestEndpointDiscovery(t *testing.T) {
	for _, tc := range []struct{ public, want string }{
		{"https://thumbd.example.com", "thumbd.example.com"},
		{"https://thumbd.example.com:443/", "thumbd.example.com"},
		{"https://thumbd.example.com:8443", "thumbd.example.com:8443"},
		{"http://10.0.0.5:8080", "10.0.0.5:8080"},
		{"http://thumbd.internal:80", "thumbd.internal"},
		{"", ""}, // the request's Host
	} {
		ts, _ := newTestServer(t, Config{PublicURL: tc.public})
		want := tc.want
		if want == "" {
			want = strings.TrimPrefix(ts.URL, "http://")
		}
		r := get(t, ts.URL+"/v1.1")
		if r.status != http.StatusOK || string(r.raw) != want || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Errorf("public %q: %d %q (%s), want %q", tc.public, r.status, r.raw, r.header.Get("Content-Type"), want)
		}
	}
	// What the PHP client sends next: the methods under /v1.1/.
	ts, _ := newTestServer(t, Config{})
	r := postForm(t, ts.URL+"/v1.1/access_token", url.Values{"api_key": {"my-project-key-0001"}})
	if code := r.apiCode(t); code != 0 || r.str("token") != fakeAccess {
		t.Errorf("/v1.1/access_token: %s", r.raw)
	}
}

func TestStatusLinksManifest(t *testing.T) {
	snap := engine.Snapshot{State: engine.StateCompleted, Images: []engine.Image{
		{Output: 0, Kind: engine.KindImage, Format: "png", Location: s3Location(), Manifest: fakeTask + "/thumbnail-0.manifest.json"},
		{Output: 1, Kind: engine.KindImage, Format: "png", Location: s3Location()},
	}}
	b, _ := json.Marshal(wire.TaskStatus(snap, "http://thumbd.test"))
	var st struct {
		Images []map[string]any `json:"images"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if got := st.Images[0]["manifest_url"]; got != "http://thumbd.test/storage/"+fakeTask+"/thumbnail-0.manifest.json" {
		t.Errorf("manifest_url = %v", got)
	}
	if _, ok := st.Images[1]["manifest_url"]; ok {
		t.Errorf("an image without a kept manifest has manifest_url: %v", st.Images[1])
	}
}

func s3Location() storage.Location {
	return storage.Location{URL: "s3://s3.example.com/bucket/thumb.png", Type: "custom_s3", Host: "s3.example.com", Bucket: "bucket", Key: "thumb.png"}
}
