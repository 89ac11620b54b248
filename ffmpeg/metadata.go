package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// MetadataArgs builds the ffprobe invocation that describes src's container
// and every one of its streams, as JSON: what Qencode's "metadata" output
// delivers.
func MetadataArgs(src string) []string {
	args := []string{"-hide_banner", "-v", "error", "-of", "json", "-show_format", "-show_streams"}
	return append(args, InputArgs(src)...)
}

// Metadata returns ffprobe's JSON description of src (MetadataArgs), with
// format.filename replaced by name: src may be a URL only this server can
// read, or carry credentials. It fails with a *SourceError when src cannot
// be read.
func (r Runner) Metadata(ctx context.Context, src, name string) ([]byte, error) {
	out, _, err := r.run(ctx, r.FFprobe, MetadataArgs(src))
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &SourceError{Reason: "the source could not be read as media: it is damaged, truncated or not a media file", Err: err}
	}
	return renameSource(out, name)
}

// renameSource sets format.filename in ffprobe's JSON, keeping the order of
// everything else.
func renameSource(out []byte, name string) ([]byte, error) {
	var doc struct {
		Streams json.RawMessage `json:"streams"`
		Format  json.RawMessage `json:"format"`
	}
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Format) == 0 {
		return nil, &SourceError{Reason: "the source could not be read as media", Err: err}
	}
	if len(doc.Streams) == 0 {
		doc.Streams = json.RawMessage("[]")
	}
	var format bytes.Buffer
	dec := json.NewDecoder(bytes.NewReader(doc.Format))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("reading ffprobe's format: %v", err)
	}
	format.WriteString("{")
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading ffprobe's format: %w", err)
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("reading ffprobe's format: %w", err)
		}
		if key == "filename" {
			v, _ = json.Marshal(name)
		}
		if format.Len() > 1 {
			format.WriteString(",")
		}
		k, _ := json.Marshal(key)
		format.Write(k)
		format.WriteString(":")
		format.Write(v)
	}
	format.WriteString("}")
	var b bytes.Buffer
	b.WriteString(`{"streams":`)
	b.Write(doc.Streams)
	b.WriteString(`,"format":`)
	b.Write(format.Bytes())
	b.WriteString("}")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b.Bytes(), "", "    "); err != nil {
		return nil, err
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}

// DescribeMetadata reads what Metadata returned as a File: the source's
// size, duration and overall bitrate, and its first video stream's size,
// frame rate, aspect ratios and codecs (zero when it has none).
func DescribeMetadata(b []byte) (File, error) {
	var pj fileProbeJSON
	if err := json.Unmarshal(b, &pj); err != nil {
		return File{}, err
	}
	f, _ := describe(pj, 0)
	return f, nil
}
