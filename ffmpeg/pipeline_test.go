package ffmpeg

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/cliptest"
)

func TestKeepExpr(t *testing.T) {
	tests := []struct {
		name         string
		starts, ends []int64
		want         string
	}{
		{name: "one span", starts: []int64{100}, ends: []int64{900},
			want: "if(ld(0),st(0,not(eq(pos,900)))*0,if(key*eq(pos,100),st(0,not(eq(pos,900)))*0,1))"},
		{name: "a keyframe alone closes where it opens", starts: []int64{100}, ends: []int64{100},
			want: "if(ld(0),st(0,not(eq(pos,100)))*0,if(key*eq(pos,100),st(0,not(eq(pos,100)))*0,1))"},
		{name: "three spans: a balanced tree, in any order", starts: []int64{500, 100, 900}, ends: []int64{950, 300, 600},
			want: "if(ld(0),st(0,not(if(lt(pos,600),eq(pos,300),if(lt(pos,950),eq(pos,600),eq(pos,950)))))*0," +
				"if(key*if(lt(pos,500),eq(pos,100),if(lt(pos,900),eq(pos,500),eq(pos,900))),st(0,not(if(lt(pos,600),eq(pos,300),if(lt(pos,950),eq(pos,600),eq(pos,950)))))*0,1))"},
	}
	for _, tt := range tests {
		if got := KeepExpr(tt.starts, tt.ends); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestSelectExpr(t *testing.T) {
	tests := []struct {
		ws   []Window
		want string
	}{
		{nil, "0"},
		{[]Window{{0.999, 1.001}}, "between(t,0.9990000,1.0010000)"},
		{[]Window{{0.999, 1.001}, {1.999, 2.001}, {2.999, 3.001}},
			"if(lt(t,1.9990000),between(t,0.9990000,1.0010000),if(lt(t,2.9990000),between(t,1.9990000,2.0010000),between(t,2.9990000,3.0010000)))"},
	}
	for _, tt := range tests {
		if got := SelectExpr(tt.ws); got != tt.want {
			t.Errorf("SelectExpr(%v)\n got %s\nwant %s", tt.ws, got, tt.want)
		}
	}
}

func TestCopyArgs(t *testing.T) {
	got := CopyArgs("https://example.com/v.mp4", 0, 1500*time.Millisecond, 12*time.Second, 0, "EXPR")
	want := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-copyts",
		"-ss", "1.500000", "-t", "12.000000", "-protocol_whitelist", "http,https,tcp,tls", "-i", "https://example.com/v.mp4",
		"-map", "0:0", "-c", "copy", "-copypriorss", "1", "-bsf:v", "noise=drop='EXPR'", "-avoid_negative_ts", "disabled", "-f", "nut", "pipe:1"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got = CopyArgs("v.mp4", 2, 0, time.Second, 520*time.Millisecond, "E")
	want = []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-copyts",
		"-ss", "0.000000", "-t", "1.000000", "-i", "v.mp4",
		"-map", "0:2", "-c", "copy", "-copypriorss", "1", "-bsf:v", "noise=drop='E'", "-output_ts_offset", "0.520000",
		"-avoid_negative_ts", "disabled", "-f", "nut", "pipe:1"}
	if !slices.Equal(got, want) {
		t.Errorf("with an offset\n got %q\nwant %q", got, want)
	}
}

func TestDecodeArgs(t *testing.T) {
	jpg := Render{Filter: "scale=160:90:flags=bicubic,setsar=1,format=yuvj420p", Codec: []string{"-c:v", "mjpeg", "-q:v", "6"}, Ext: "jpg"}
	png := Render{Filter: "scale=320:180:flags=bicubic,setsar=1,format=rgb24", Codec: []string{"-c:v", "png"}, Ext: "png"}
	tests := []struct {
		name   string
		inputs []Input
		args   []string
		graph  string
	}{
		{
			name: "a pipeline's decoder: one input, a select per rendering, numbered files even for one frame",
			inputs: []Input{{Options: []string{"-threads", "1", "-f", "nut"}, URL: "pipe:0", Branches: []Branch{
				{Select: "between(t,1,2)", Render: jpg, Frames: 3, Out: "/w/j0b0_%06d.jpg"},
				{Select: "between(t,5,6)", Render: png, Frames: 1, Out: "/w/j0b1_%06d.png"},
			}}},
			args: []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", "-copyts",
				"-threads", "1", "-f", "nut", "-i", "pipe:0", "-filter_complex_script", "/w/g",
				"-map", "[o0]", "-fps_mode", "passthrough", "-frames:v", "3", "-c:v", "mjpeg", "-q:v", "6", "-f", "image2", "-start_number", "1", "/w/j0b0_%06d.jpg",
				"-map", "[o1]", "-fps_mode", "passthrough", "-frames:v", "1", "-c:v", "png", "-f", "image2", "-start_number", "1", "/w/j0b1_%06d.png"},
			graph: "[0:v:0]split=2[i0b0][i0b1];\n" +
				"[i0b0]select='between(t,1,2)',showinfo@b0,scale=160:90:flags=bicubic,setsar=1,format=yuvj420p[o0];\n" +
				"[i0b1]select='between(t,5,6)',showinfo@b1,scale=320:180:flags=bicubic,setsar=1,format=rgb24[o1]\n",
		},
		{
			name: "input seeks: one input per frame, branches counted across inputs",
			inputs: []Input{
				{Options: []string{"-threads", "1", "-ss", "1.000000"}, URL: "v.mp4", Branches: []Branch{{Render: jpg, Frames: 1, Out: "/w/a.jpg"}}},
				{Options: []string{"-threads", "1", "-skip_frame", "nokey", "-ss", "2.000000"}, URL: "v.mp4", Branches: []Branch{{Render: png, Frames: 1, Out: "/w/b.png"}}},
			},
			args: []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", "-copyts",
				"-threads", "1", "-ss", "1.000000", "-i", "v.mp4", "-threads", "1", "-skip_frame", "nokey", "-ss", "2.000000", "-i", "v.mp4",
				"-filter_complex_script", "/w/g",
				"-map", "[o0]", "-fps_mode", "passthrough", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "6", "-f", "image2", "-update", "1", "/w/a.jpg",
				"-map", "[o1]", "-fps_mode", "passthrough", "-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1", "/w/b.png"},
			graph: "[0:v:0]showinfo@b0,scale=160:90:flags=bicubic,setsar=1,format=yuvj420p[o0];\n" +
				"[1:v:0]showinfo@b1,scale=320:180:flags=bicubic,setsar=1,format=rgb24[o1]\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, graph := DecodeArgs(tt.inputs, "/w/g")
			if !slices.Equal(args, tt.args) {
				t.Errorf("args\n got %q\nwant %q", args, tt.args)
			}
			if graph != tt.graph {
				t.Errorf("graph\n got %q\nwant %q", graph, tt.graph)
			}
		})
	}
}

func TestParseBranches(t *testing.T) {
	log, err := os.ReadFile("testdata/branches.log")
	if err != nil {
		t.Fatal(err)
	}
	got := ParseBranches(log)
	want := map[int][]FrameInfo{
		0: {{PTS: 0, Keyframe: true}, {PTS: 1001 * time.Millisecond, Keyframe: false}, {PTS: 2002 * time.Millisecond, Keyframe: true}},
		1: {{PTS: 1001 * time.Millisecond, Keyframe: false}},
	}
	if len(got) != len(want) {
		t.Fatalf("branches %v, want %v", got, want)
	}
	for b, w := range want {
		if !slices.Equal(got[b], w) {
			t.Errorf("branch %d: %v, want %v", b, got[b], w)
		}
	}
	if len(ParseBranches([]byte("[showinfo@b0 @ 0x1] n:   0 pts:      0 pts_time:0 iskey:1\n"))) != 0 {
		t.Error("a frame before its time base was reported")
	}
	if s := strings.TrimSpace(string(log)); s == "" {
		t.Error("empty testdata")
	}
}

func TestProbeArgBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"index", IndexArgs("https://example.com/v.mp4", 1),
			[]string{"-hide_banner", "-v", "error", "-select_streams", "1", "-show_entries", "packet=pts,pos,flags", "-of", "csv=p=0", "-protocol_whitelist", "http,https,tcp,tls", "-i", "https://example.com/v.mp4"}},
		{"last frame", LastFrameArgs("v.mp4", Grab{Filter: "transpose=clock,scale=160:90", Codec: []string{"-c:v", "png"}, Out: "/w/t.png"}),
			[]string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", "-copyts",
				"-threads", "1", "-noautorotate", "-sseof", "-3", "-i", "v.mp4", "-map", "0:v:0", "-an", "-sn", "-dn",
				"-filter:v", "showinfo@g0,transpose=clock,scale=160:90", "-c:v", "png", "-f", "image2", "-update", "1", "/w/t.png"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s\n got %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestRotateFilter(t *testing.T) {
	for rot, want := range map[int]string{0: "", 90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock", 45: ""} {
		if got := RotateFilter(rot); got != want {
			t.Errorf("RotateFilter(%d) = %q, want %q", rot, got, want)
		}
	}
}

// TestKeepExprWithFFmpeg runs the demuxing half of a job on a real clip and
// checks that exactly the packets of its spans come out, in decode order.
func TestKeepExprWithFFmpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a clip with ffmpeg")
	}
	src := cliptest.MakeTrap(t, cliptest.Trap{Rate: "25", Frames: 50, X264: "keyint=10:min-keyint=10:scenecut=0:bframes=2"})
	ctx := context.Background()
	r := Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	m, err := r.Probe(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	x, err := r.Index(ctx, src, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Spans: keyframe 10 alone, and keyframe 20 up to the first B-frame
	// after it (shown before a frame decoded ahead of it).
	if !x.Key(10) || !x.Key(20) {
		t.Fatalf("keyframes are not at 10 and 20: the clip is not the one the test means")
	}
	b := 21
	for ; b < 29 && x.Decode(b) < x.Decode(b+1) && x.Decode(b) < x.Decode(b+2); b++ {
	}
	expr := KeepExpr([]int64{x.Pos(10), x.Pos(20)}, []int64{x.Pos(10), x.Pos(b)})
	out, err := exec.Command("sh", "-c", fmt.Sprintf("%s | ffprobe -v error -show_entries packet=pts_time -of csv=p=0 -",
		shellJoin(append([]string{"ffmpeg"}, CopyArgs(src, m.Stream, 0, 3*time.Second, 0, expr)...)))).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		v, _ := strconv.ParseFloat(strings.Trim(l, ","), 64)
		got = append(got, int(math.Round(v*25)))
	}
	// Frame 10, then every packet from keyframe 20 to frame b, in decode
	// order: the anchor b needs comes before it.
	want := []int{10}
	for d := x.Decode(20); d <= x.Decode(b); d++ {
		for i := range x.Len() {
			if x.Decode(i) == d {
				want = append(want, i)
			}
		}
	}
	if !slices.Equal(got, want) || len(want) < 4 {
		t.Errorf("packets kept %v, want %v (frame %d is the B-frame)", got, want, b)
	}
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
