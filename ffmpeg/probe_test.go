package ffmpeg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/cliptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cliptest.Cleanup()
	os.Exit(code)
}

// ---- Probe ----

func TestProbeClips(t *testing.T) {
	dir := cliptest.Dir(t)
	r := Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	const fd = 40 * time.Millisecond
	tests := []struct {
		file           string
		w, h           int // coded
		dispW, dispH   int
		rotation       int
		dur            time.Duration
		videoStart     time.Duration
		sourceErr      string // non-empty: Probe must fail with a *SourceError containing it
		formatContains string
	}{
		{file: "clip.mp4", w: 640, h: 360, dispW: 640, dispH: 360, dur: 10 * time.Second, formatContains: "mp4"},
		{file: "rot90.mp4", w: 320, h: 180, dispW: 180, dispH: 320, rotation: 270, dur: time.Second},
		{file: "rot180.mp4", w: 320, h: 180, dispW: 320, dispH: 180, rotation: 180, dur: time.Second},
		{file: "rot270.mp4", w: 320, h: 180, dispW: 180, dispH: 320, rotation: 90, dur: time.Second},
		{file: "sar.mp4", w: 320, h: 240, dispW: 640, dispH: 240, dur: time.Second},
		{file: "av.mp4", w: 160, h: 120, dispW: 160, dispH: 120, dur: 2 * time.Second},
		{file: "clip.ts", w: 640, h: 360, dispW: 640, dispH: 360, dur: 10 * time.Second, videoStart: 1480 * time.Millisecond, formatContains: "mpegts"},
		// Matroska's millisecond timestamps: the muxer shifts the B-frame delay to 23 ms.
		{file: "clip.mkv", w: 640, h: 360, dispW: 640, dispH: 360, dur: 10 * time.Second, videoStart: 23 * time.Millisecond, formatContains: "matroska"},
		{file: "short.mp4", w: 160, h: 120, dispW: 160, dispH: 120, dur: 8 * fd},
		{file: "onekey.mp4", w: 640, h: 360, dispW: 640, dispH: 360, dur: 4 * time.Second},
		{file: "truncated.ts", w: 640, h: 360, dispW: 640, dispH: 360, dur: 128 * fd, videoStart: 1480 * time.Millisecond},
		{file: "audio.m4a", sourceErr: "no video stream"},
		{file: "notes.txt", sourceErr: "could not be read"},
		{file: "empty.mp4", sourceErr: "could not be read"},
		{file: "missing.mp4", sourceErr: "could not be read"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := r.Probe(context.Background(), filepath.Join(dir, tt.file))
			if tt.sourceErr != "" {
				var se *SourceError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.sourceErr) {
					t.Fatalf("Probe = %+v, %v; want a *SourceError saying %q", m, err, tt.sourceErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if m.Width != tt.w || m.Height != tt.h {
				t.Errorf("coded size %dx%d, want %dx%d", m.Width, m.Height, tt.w, tt.h)
			}
			if w, h := m.DisplaySize(); w != tt.dispW || h != tt.dispH {
				t.Errorf("DisplaySize %dx%d, want %dx%d (%+v)", w, h, tt.dispW, tt.dispH, m)
			}
			if m.Rotation != tt.rotation {
				t.Errorf("Rotation %d, want %d", m.Rotation, tt.rotation)
			}
			if m.FrameDur != fd {
				t.Errorf("FrameDur %v, want %v", m.FrameDur, fd)
			}
			if d := m.Duration(); absDur(d-tt.dur) > time.Millisecond {
				t.Errorf("Duration %v, want %v (%+v)", d, tt.dur, m)
			}
			if absDur(m.VideoStart-tt.videoStart) > time.Millisecond {
				t.Errorf("VideoStart %v, want %v", m.VideoStart, tt.videoStart)
			}
			if m.Start > m.VideoStart {
				t.Errorf("file Start %v after VideoStart %v", m.Start, m.VideoStart)
			}
			if tt.formatContains != "" && !strings.Contains(m.FormatName, tt.formatContains) {
				t.Errorf("FormatName %q", m.FormatName)
			}
			if m.Size <= 0 {
				t.Errorf("Size %d", m.Size)
			}
		})
	}
}

// TestProbeFakeFFprobe feeds Probe canned ffprobe output to cover what the
// generated clips do not: cover art, legacy rotate tags, odd frame rates,
// missing packets.
func TestProbeFakeFFprobe(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	const video = `{"index":%d,"codec_type":"video","codec_name":"h264","width":640,"height":360,"sample_aspect_ratio":"1:1","avg_frame_rate":"%s","r_frame_rate":"%s","start_time":"0.000000","duration":"%s"%s}`
	probe := func(streams ...string) string {
		return `{"streams":[` + strings.Join(streams, ",") + `],"format":{"format_name":"mov,mp4","start_time":"0.000000","duration":"10.000000","size":"1234"}}`
	}
	packets := func(pts ...string) string { // as -of csv=p=0 prints them
		var b strings.Builder
		for _, p := range pts {
			b.WriteString(p + "\n")
		}
		return b.String() + "N/A\n"
	}
	// combined is the one-run output (ProbeTailArgs): the packets, with
	// their stream, and the description.
	combined := func(probe, packets, stream string) string {
		if !strings.HasPrefix(probe, "{") {
			return probe
		}
		var ps []string
		for _, pts := range strings.Fields(packets) {
			ps = append(ps, `{"stream_index":`+cmp.Or(stream, "0")+`,"pts_time":"`+pts+`","duration_time":"0.040000"}`)
		}
		return `{"packets":[` + strings.Join(ps, ",") + "]," + strings.TrimPrefix(probe, "{")
	}
	cover := `{"index":0,"codec_type":"video","codec_name":"mjpeg","width":300,"height":300,"disposition":{"attached_pic":1}}`
	audio := `{"index":0,"codec_type":"audio","codec_name":"aac","start_time":"0.000000","duration":"10.000000"}`
	tests := []fakeProbe{
		{name: "plain", probe: probe(fmt.Sprintf(video, 0, "25/1", "25/1", "10.000000", "")), packets: packets("9.800000", "9.960000", "9.880000"),
			stream: "0", frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "cover art first", probe: probe(cover, fmt.Sprintf(video, 1, "25/1", "25/1", "10.000000", "")), packets: packets("9.960000"),
			stream: "1", frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "legacy rotate tag", probe: probe(fmt.Sprintf(video, 0, "25/1", "25/1", "10.000000", `,"tags":{"rotate":"90"}`)), packets: packets("9.960000"),
			stream: "0", rotation: 90, frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "display matrix -90", probe: probe(fmt.Sprintf(video, 0, "25/1", "25/1", "10.000000", `,"side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]`)), packets: packets("9.960000"),
			stream: "0", rotation: 90, frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "display matrix 180", probe: probe(fmt.Sprintf(video, 0, "25/1", "25/1", "10.000000", `,"side_data_list":[{"side_data_type":"Display Matrix","rotation":180}]`)), packets: packets("9.960000"),
			stream: "0", rotation: 180, frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "no avg frame rate", probe: probe(fmt.Sprintf(video, 0, "0/0", "30000/1001", "10.000000", "")), packets: packets("9.976633"),
			stream: "0", frameDur: 33367 * time.Microsecond, lastFrame: 9976633 * time.Microsecond, codec: "h264"},
		{name: "matroska duration tag", probe: probe(strings.Replace(fmt.Sprintf(video, 0, "25/1", "25/1", "", `,"tags":{"DURATION":"00:00:04.000000000"}`), `"duration":"",`, "", 1)), packets: packets("3.960000"),
			stream: "0", frameDur: 40 * time.Millisecond, lastFrame: 3960 * time.Millisecond, codec: "h264"},
		{name: "no packets: from the duration", probe: probe(fmt.Sprintf(video, 0, "25/1", "25/1", "10.000000", "")), packets: packets(),
			stream: "0", frameDur: 40 * time.Millisecond, lastFrame: 9960 * time.Millisecond, codec: "h264"},
		{name: "audio only", probe: probe(audio), packets: packets(), errContain: "no video stream"},
		{name: "not json", probe: "garbage", packets: packets(), errContain: "could not be read"},
		{name: "ffprobe fails", probe: "{}", rc: 1, packets: packets(), errContain: "could not be read"},
	}
	// Each case runs with an ffprobe that answers the one-run probe, and
	// with one that fails it (a source whose seek past the end fails):
	// then the streams and the last packets are read in separate runs.
	for _, oneRun := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/one run %v", tt.name, oneRun), func(t *testing.T) {
				runFakeProbe(t, tt, combined(tt.probe, tt.packets, tt.stream), oneRun)
			})
		}
	}
}

// fakeProbe is one case of TestProbeFakeFFprobe.
type fakeProbe struct {
	name       string
	probe      string
	packets    string
	rc         int
	stream     string // -select_streams wanted
	rotation   int
	frameDur   time.Duration
	lastFrame  time.Duration
	codec      string
	errContain string
}

func runFakeProbe(t *testing.T, tt fakeProbe, combined string, oneRun bool) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("probe.json", tt.probe)
	write("packets.json", tt.packets)
	write("combined.json", combined)
	first := fmt.Sprintf("*99999999%%*) cat '%s/combined.json'; exit %d ;;\n", dir, tt.rc)
	if !oneRun {
		first = "*99999999%*) exit 1 ;;\n"
	}
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> '%[1]s/args'\ncase \"$*\" in\n%[3]s*packet=*) cat '%[1]s/packets.json' ;;\n*) cat '%[1]s/probe.json'; exit %[2]d ;;\nesac\n", dir, tt.rc, first)
	write("ffprobe", script)
	if err := os.Chmod(filepath.Join(dir, "ffprobe"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := Runner{FFmpeg: "ffmpeg", FFprobe: filepath.Join(dir, "ffprobe")}
	m, err := r.Probe(context.Background(), "in.mp4")
	if tt.errContain != "" {
		var se *SourceError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.errContain) {
			t.Fatalf("Probe = %+v, %v; want a *SourceError with %q", m, err, tt.errContain)
		}
		return
	}
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if m.Rotation != tt.rotation || m.FrameDur != tt.frameDur || m.LastFrame != tt.lastFrame || m.Codec != tt.codec || m.Width != 640 {
		t.Errorf("Probe = %+v\nwant rotation %d, frame %v, last %v, codec %s, 640 wide", m, tt.rotation, tt.frameDur, tt.lastFrame, tt.codec)
	}
	if m.Size != 1234 || m.FormatName != "mov,mp4" {
		t.Errorf("format fields: %+v", m)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	runs := strings.Count(string(args), "\n")
	switch {
	case oneRun && tt.packets != packetsNone && runs != 1:
		t.Errorf("%d ffprobe runs, want 1:\n%s", runs, args)
	case !oneRun && !strings.Contains(string(args), "-select_streams "+tt.stream+" "):
		t.Errorf("packets read from the wrong stream (want %s):\n%s", tt.stream, args)
	}
}

// packetsNone is the packet list of a source whose last packets cannot be
// found.
const packetsNone = "N/A\n" // as packets() prints none

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
