package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// number is a JSON value that Qencode clients send either as a number or as
// a numeric string ("0.15", "320"). An empty string counts as absent.
type number struct {
	set bool
	v   float64
	raw string
}

func (n *number) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	n.raw = string(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", s)
		}
		n.set, n.v = true, f
		return nil
	}
	if string(b) == "true" || string(b) == "false" {
		n.set = true
		if string(b) == "true" {
			n.v = 1
		}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	n.set, n.v = true, f
	return nil
}

// integer returns the value as an int, or a ValidationError naming field.
func (n number) integer(field string) (int, error) {
	if !n.set {
		return 0, nil
	}
	if n.v != math.Trunc(n.v) || math.Abs(n.v) > 1<<31 {
		return 0, &engine.ValidationError{Field: field, Reason: fmt.Sprintf("must be a whole number, got %s", n.raw)}
	}
	return int(n.v), nil
}

// text is a JSON string that may also arrive as a number.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
		return nil
	}
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		return errors.New("must be a string")
	}
	*t = text(b)
	return nil
}

// numbers is a value that may list several numbers: a number or numeric
// string, a comma-separated string of them ("0.1,0.5"), or a JSON array of
// numbers and numeric strings. An empty string or array counts as absent.
type numbers struct {
	set bool
	vs  []float64
}

func (n *numbers) UnmarshalJSON(b []byte) error {
	var items []json.RawMessage
	switch b = bytes.TrimSpace(b); {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &items); err != nil {
			return errors.New("must be a number or a list of numbers")
		}
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			return nil
		}
		for _, part := range strings.Split(s, ",") {
			item, _ := json.Marshal(strings.TrimSpace(part))
			items = append(items, item)
		}
	default:
		items = []json.RawMessage{b}
	}
	for _, item := range items {
		var x number
		if err := x.UnmarshalJSON(item); err != nil {
			return err
		}
		if !x.set {
			return errors.New("must not list an empty value")
		}
		n.vs = append(n.vs, x.v)
	}
	n.set = len(n.vs) > 0
	return nil
}

// texts is a string, a comma-separated string or a JSON array of strings.
// An empty string or array counts as absent.
type texts []string

func (t *texts) UnmarshalJSON(b []byte) error {
	var items []text
	switch b = bytes.TrimSpace(b); {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &items); err != nil {
			return errors.New("must be a string or a list of strings")
		}
	default:
		var s text
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if strings.TrimSpace(string(s)) == "" {
			return nil
		}
		for _, part := range strings.Split(string(s), ",") {
			items = append(items, text(part))
		}
	}
	for _, item := range items {
		*t = append(*t, strings.TrimSpace(string(item)))
	}
	return nil
}

// wireQuery is the inner object of start_encode2's query.
type wireQuery struct {
	Source      json.RawMessage `json:"source"`
	Stitch      json.RawMessage `json:"stitch"`
	Format      json.RawMessage `json:"format"`
	CallbackURL text            `json:"callback_url"`
}

// wireFormat is one entry of query.format.
type wireFormat struct {
	Output, ResizeMode, ImageFormat, UserTag, Tag, Accuracy              text
	FrameNumber, StartTime, Interval, Width, Height, Resolution, Quality number
	Sprite, Columns, Rows, Manifest                                      number
	Time                                                                 numbers
	Size                                                                 texts
	Destination                                                          json.RawMessage
}

// fields maps each wire name to where it is decoded.
func (f *wireFormat) fields() map[string]any {
	return map[string]any{
		"output": &f.Output, "size": &f.Size, "resize_mode": &f.ResizeMode, "image_format": &f.ImageFormat,
		"user_tag": &f.UserTag, "tag": &f.Tag, "time": &f.Time, "frame_number": &f.FrameNumber,
		"start_time": &f.StartTime, "interval": &f.Interval, "width": &f.Width, "height": &f.Height,
		"resolution": &f.Resolution, "quality": &f.Quality, "sprite": &f.Sprite, "columns": &f.Columns,
		"rows": &f.Rows, "destination": &f.Destination, "accuracy": &f.Accuracy, "manifest": &f.Manifest,
	}
}

// decodeObject decodes a JSON object field by field, so that an error names
// the field it is about. Keys not in fields are ignored.
func decodeObject(raw json.RawMessage, fields map[string]any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return &engine.ValidationError{Field: "", Reason: "must be a JSON object"}
	}
	for k, v := range m {
		dst, ok := fields[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return &engine.ValidationError{Field: k, Reason: fmt.Sprintf("must not be a JSON %s", te.Value)}
			}
			return &engine.ValidationError{Field: k, Reason: err.Error()}
		}
	}
	return nil
}

// wireDestination is one destination object.
type wireDestination struct {
	URL          text `json:"url"`
	Key          text `json:"key"`
	Secret       text `json:"secret"`
	Permissions  text `json:"permissions"`
	StorageClass text `json:"storage_class"`
	CacheControl text `json:"cache_control"`
}

// decodeQuery parses start_encode2's query field, which must be a JSON
// object of the form {"query": {...}}, into an engine.Spec.
func decodeQuery(raw string) (engine.Spec, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return engine.Spec{}, errorf(codeQueryRequired, "query field is required")
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &outer); err != nil {
		return engine.Spec{}, errorf(codeFieldRequired, "query: not valid JSON: %v", err)
	}
	inner, ok := outer["query"]
	if !ok || len(bytes.TrimSpace(inner)) == 0 || string(bytes.TrimSpace(inner)) == "null" {
		return engine.Spec{}, errorf(codeQueryRequired, `query field is required: the query JSON must be wrapped as {"query": {...}}`)
	}
	var q wireQuery
	if err := json.Unmarshal(inner, &q); err != nil {
		return engine.Spec{}, errorf(codeFieldRequired, "query: %v", err)
	}
	var spec engine.Spec
	if err := refuseUnsupported(inner, unsupportedQueryFields); err != nil {
		return spec, err
	}
	spec.Warnings = unknownFields(inner, "", queryFields)
	if len(q.Stitch) > 0 && string(q.Stitch) != "null" {
		return spec, &engine.ValidationError{Field: "stitch", Reason: "is not supported by thumbd; give one source"}
	}
	var src any
	if len(q.Source) > 0 {
		if err := json.Unmarshal(q.Source, &src); err != nil {
			return spec, &engine.ValidationError{Field: "source", Reason: "must be a URL string"}
		}
	}
	switch s := src.(type) {
	case nil:
		return spec, &engine.ValidationError{Field: "source", Reason: "is required"}
	case string:
		spec.Source = strings.TrimSpace(s)
	default:
		return spec, &engine.ValidationError{Field: "source", Reason: "must be a URL string"}
	}
	spec.CallbackURL = string(q.CallbackURL)
	if len(spec.CallbackURL) > 4000 {
		return spec, &engine.ValidationError{Field: "callback_url", Reason: "must be at most 4000 characters"}
	}

	var formats []json.RawMessage
	switch f := bytes.TrimSpace(q.Format); {
	case len(f) == 0 || string(f) == "null":
		return spec, &engine.ValidationError{Field: "format", Reason: "is required: list the outputs to make"}
	case f[0] == '{':
		formats = []json.RawMessage{f}
	default:
		if err := json.Unmarshal(f, &formats); err != nil {
			return spec, &engine.ValidationError{Field: "format", Reason: "must be an array of output objects"}
		}
	}
	if len(formats) == 0 {
		return spec, &engine.ValidationError{Field: "format", Reason: "must list at least one output"}
	}
	for i, raw := range formats {
		o, err := decodeFormat(raw, fmt.Sprintf("format[%d]", i), &spec.Warnings)
		if err != nil {
			if ve, ok := err.(*engine.ValidationError); ok {
				ve.Field = fmt.Sprintf("format[%d].%s", i, ve.Field)
			}
			return spec, err
		}
		spec.Outputs = append(spec.Outputs, o)
	}
	return spec, engine.Validate(spec)
}

// decodeFormat turns one format entry, where in the query (format[1]),
// into an engine.Output. What it ignores it adds to ws.
func decodeFormat(raw json.RawMessage, where string, ws *[]engine.Warning) (engine.Output, error) {
	var o engine.Output
	var f wireFormat
	if err := decodeObject(raw, f.fields()); err != nil {
		return o, err
	}
	ignored := func(field, why string) {
		*ws = append(*ws, engine.Warning{Message: "Field ignored", Details: fmt.Sprintf("%s.%s is ignored: %s", where, field, why)})
	}
	kind := engine.OutputKind(strings.ToLower(strings.TrimSpace(string(f.Output))))
	switch {
	case kind == engine.KindThumbnail, kind == engine.KindThumbnails, kind == engine.KindMetadata, kind.Video():
	case kind == "":
		return o, &engine.ValidationError{Field: "output", Reason: "is required (" + madeOutputs + ")"}
	default:
		return o, outputError(string(kind))
	}
	if err := refuseUnsupported(raw, unsupportedFields); err != nil {
		return o, err
	}
	*ws = append(*ws, unknownFields(raw, where, formatFields, ownFormatFields)...)
	if kind == engine.KindThumbnail && f.Interval.set {
		// Qencode's thumbnails tutorial: "set output to thumbnail and set
		// interval" makes a series with its WebVTT.
		kind = engine.KindThumbnails
	}
	o.Kind = kind
	switch {
	case !f.Time.set:
	case kind == engine.KindThumbnails:
		ignored("time", "a series (interval) takes an image at 0, interval, 2×interval, …")
	case kind == engine.KindThumbnail && (f.FrameNumber.set || f.StartTime.set):
		winner := "frame_number"
		if !f.FrameNumber.set {
			winner = "start_time"
		}
		ignored("time", winner+" wins over time")
	case len(f.Time.vs) == 1:
		v := f.Time.vs[0]
		o.Time = &v
	default:
		o.Times = f.Time.vs
	}
	if f.FrameNumber.set {
		n, err := f.FrameNumber.integer("frame_number")
		if err != nil {
			return o, err
		}
		v := int64(n)
		o.FrameNumber = &v
	}
	if f.StartTime.set {
		d := time.Duration(f.StartTime.v * float64(time.Second))
		o.StartTime = &d
	}
	if f.Interval.set {
		o.Interval = time.Duration(f.Interval.v * float64(time.Second))
		if f.Interval.v <= 0 {
			return o, &engine.ValidationError{Field: "interval", Reason: "must be a positive number of seconds"}
		}
	}
	var err error
	ints := []struct {
		n    number
		name string
		dst  *int
	}{
		{f.Width, "width", &o.Width}, {f.Height, "height", &o.Height}, {f.Resolution, "resolution", &o.Resolution},
		{f.Quality, "quality", &o.Quality}, {f.Columns, "columns", &o.Columns}, {f.Rows, "rows", &o.Rows},
	}
	for _, x := range ints {
		if *x.dst, err = x.n.integer(x.name); err != nil {
			return o, err
		}
		if x.n.set && *x.dst <= 0 && x.name != "quality" {
			return o, &engine.ValidationError{Field: x.name, Reason: "must be a positive whole number"}
		}
	}
	if kind.Video() {
		o.Quality = 0 // a CRF, read by decodeVideo
	} else if f.Quality.set && (o.Quality < 1 || o.Quality > 100) {
		return o, &engine.ValidationError{Field: "quality", Reason: "must be between 1 and 100"}
	}
	var sizes []engine.Size
	for _, s := range f.Size {
		w, h, ok := parseSize(s)
		if !ok {
			return o, &engine.ValidationError{Field: "size", Reason: fmt.Sprintf("must be WIDTHxHEIGHT, like \"320x240\", or a list of them, got %q", s)}
		}
		sizes = append(sizes, engine.Size{W: w, H: h})
	}
	switch {
	case len(sizes) == 1:
		if o.Width == 0 && o.Height == 0 {
			o.Width, o.Height = sizes[0].W, sizes[0].H
		}
	case len(sizes) > 1:
		// Several sizes: each image takes its box from the list.
		o.Sizes = sizes
		for _, d := range []struct {
			name string
			set  bool
			v    *int
		}{{"width", f.Width.set, &o.Width}, {"height", f.Height.set, &o.Height}, {"resolution", f.Resolution.set, &o.Resolution}} {
			if d.set && kind == engine.KindThumbnail {
				ignored(d.name, "a list of sizes gives each image its size")
				*d.v = 0
			}
		}
	}
	switch m := strings.ToLower(strings.TrimSpace(string(f.ResizeMode))); m {
	case "", "scale":
		o.ResizeMode = engine.ResizeScale
	case "crop":
		o.ResizeMode = engine.ResizeCrop
	default:
		return o, &engine.ValidationError{Field: "resize_mode", Reason: fmt.Sprintf("must be \"scale\" or \"crop\", got %q", m)}
	}
	switch im := strings.ToLower(strings.TrimSpace(string(f.ImageFormat))); im {
	case "", "png":
		o.Format = engine.PNG
	case "jpg", "jpeg":
		o.Format = engine.JPEG
	case "webp":
		o.Format = engine.WebP
	default:
		return o, &engine.ValidationError{Field: "image_format", Reason: fmt.Sprintf("must be \"png\", \"jpg\" or \"webp\", got %q", im)}
	}
	if f.Sprite.set {
		if f.Sprite.v != 0 && f.Sprite.v != 1 {
			return o, &engine.ValidationError{Field: "sprite", Reason: "must be 0 or 1"}
		}
		o.Sprite = f.Sprite.v == 1
	}
	if (f.Columns.set || f.Rows.set) && !o.Sprite {
		field := "columns"
		if !f.Columns.set {
			field = "rows"
		}
		return o, &engine.ValidationError{Field: field, Reason: "needs \"sprite\": 1"}
	}
	if o.Sprite && kind != engine.KindThumbnails {
		return o, &engine.ValidationError{Field: "sprite", Reason: "applies only to output \"thumbnails\""}
	}
	if a := strings.TrimSpace(string(f.Accuracy)); a != "" {
		// thumbd's own: which frame a time gets (ffmpeg.Accuracy).
		acc, err := ffmpeg.ParseAccuracy(a)
		if err != nil {
			return o, &engine.ValidationError{Field: "accuracy", Reason: err.Error()}
		}
		o.Accuracy = acc
	}
	if f.Manifest.set {
		// thumbd's own: upload the manifest to the destinations too.
		if f.Manifest.v != 0 && f.Manifest.v != 1 {
			return o, &engine.ValidationError{Field: "manifest", Reason: "must be 0 or 1"}
		}
		o.Manifest = f.Manifest.v == 1
	}
	o.UserTag = string(f.UserTag)
	if o.UserTag == "" {
		o.UserTag = string(f.Tag)
	}
	o.Destinations, err = decodeDestinations(f.Destination, where, ws)
	if err == nil && kind.Video() {
		err = decodeVideo(raw, &o)
	}
	return o, err
}

// decodeDestinations accepts one destination object, an array of them, or
// nothing (an absent field, null or "").
func decodeDestinations(raw json.RawMessage, where string, ws *[]engine.Warning) ([]storage.Destination, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	var list []wireDestination
	switch raw[0] {
	case '{':
		var d wireDestination
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, &engine.ValidationError{Field: "destination", Reason: err.Error()}
		}
		list = []wireDestination{d}
		*ws = append(*ws, unknownFields(raw, where+".destination", destinationFields)...)
	case '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, &engine.ValidationError{Field: "destination", Reason: "must be an object or an array of objects"}
		}
		var objs []json.RawMessage
		_ = json.Unmarshal(raw, &objs)
		for i, obj := range objs {
			*ws = append(*ws, unknownFields(obj, fmt.Sprintf("%s.destination[%d]", where, i), destinationFields)...)
		}
	default:
		return nil, &engine.ValidationError{Field: "destination", Reason: "must be an object with a url, or an array of them"}
	}
	out := make([]storage.Destination, 0, len(list))
	for i, d := range list {
		field := "destination.url"
		if raw[0] == '[' {
			field = fmt.Sprintf("destination[%d].url", i)
		}
		if strings.TrimSpace(string(d.URL)) == "" {
			return nil, &engine.ValidationError{Field: field, Reason: "is required"}
		}
		out = append(out, storage.Destination{
			URL: strings.TrimSpace(string(d.URL)), Key: string(d.Key), Secret: string(d.Secret),
			Permissions: string(d.Permissions), StorageClass: string(d.StorageClass), CacheControl: string(d.CacheControl),
		})
	}
	return out, nil
}

func parseSize(s string) (int, int, bool) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(strings.TrimSpace(a))
	h, err2 := strconv.Atoi(strings.TrimSpace(b))
	return w, h, err1 == nil && err2 == nil && w > 0 && h > 0
}
