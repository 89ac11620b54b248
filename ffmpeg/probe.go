package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Media is what the engine knows about a source after probing it.
type Media struct {
	FormatName string
	Size       int64         // bytes; 0 when unknown
	Start      time.Duration // start time of the file (the -ss origin)

	// The video stream.
	Stream     int   // its index among the file's streams
	TBNum      int64 // its time base
	TBDen      int64
	VideoStart time.Duration // first presentation time of the video stream
	LastFrame  time.Duration // presentation time of the last video frame
	FrameDur   time.Duration // nominal duration of one frame
	Width      int           // coded size
	Height     int
	SARNum     int // sample aspect ratio; 1:1 when unknown
	SARDen     int
	Rotation   int // clockwise degrees the player turns the picture: 0, 90, 180, 270
	Codec      string
	Transfer   string // color_transfer, e.g. smpte2084 for HDR10
}

// Duration is the length of the video stream, from its first frame to the
// end of its last one. It is what a player shows and what `time` fractions
// and thumbnail intervals are measured against.
func (m Media) Duration() time.Duration {
	return m.LastFrame + m.FrameDur - m.VideoStart
}

// DisplaySize is the size a player shows: non-square pixels stretched and
// the picture rotated.
func (m Media) DisplaySize() (w, h int) {
	w, h = m.Width, m.Height
	if m.SARNum > 0 && m.SARDen > 0 && m.SARNum != m.SARDen {
		w = int(math.Round(float64(w) * float64(m.SARNum) / float64(m.SARDen)))
	}
	if m.Rotation == 90 || m.Rotation == 270 {
		w, h = h, w
	}
	return w, h
}

// HDR reports whether the video uses a high-dynamic-range transfer.
func (m Media) HDR() bool {
	return m.Transfer == "smpte2084" || m.Transfer == "arib-std-b67"
}

type probeJSON struct {
	Streams []struct {
		Index        int    `json:"index"`
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		SAR          string `json:"sample_aspect_ratio"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		TimeBase     string `json:"time_base"`
		StartTime    string `json:"start_time"`
		Duration     string `json:"duration"`
		Transfer     string `json:"color_transfer"`
		Disposition  struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
		Tags struct {
			Rotate   string `json:"rotate"`
			Duration string `json:"DURATION"`
		} `json:"tags"`
		SideData []struct {
			Type     string  `json:"side_data_type"`
			Rotation float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		StartTime  string `json:"start_time"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
	} `json:"format"`
}

type packetsJSON struct {
	Packets []packetJSON `json:"packets"`
}

type packetJSON struct {
	Stream   int    `json:"stream_index"`
	PTS      string `json:"pts_time"`
	Duration string `json:"duration_time"`
}

// probeEntries are what ProbeArgs asks ffprobe for.
const probeEntries = "format=format_name,start_time,duration,size:stream=index,codec_type,codec_name,width,height,sample_aspect_ratio,avg_frame_rate,r_frame_rate,time_base,start_time,duration,color_transfer:stream_tags=rotate,DURATION:stream_disposition=attached_pic:stream_side_data=side_data_type,rotation"

// ProbeArgs builds the ffprobe invocation that describes src's streams.
func ProbeArgs(src string) []string {
	args := []string{"-hide_banner", "-v", "error", "-of", "json", "-show_entries", probeEntries}
	return append(args, InputArgs(src)...)
}

// ProbeTailArgs builds the one ffprobe invocation that describes src's
// streams and lists the packets from the last keyframe of the file to its
// end: the seek to a time past the end lands on the last keyframe, where
// the last frame's packet is found without decoding anything.
func ProbeTailArgs(src string) []string {
	args := []string{"-hide_banner", "-v", "error", "-of", "json",
		"-read_intervals", "99999999%", "-show_entries", probeEntries + ":packet=stream_index,pts_time,duration_time"}
	return append(args, InputArgs(src)...)
}

// TailPacketsArgs builds the ffprobe invocation that lists the video
// packets from about `from` to the end of src, to find the last frame: one
// presentation time a line.
func TailPacketsArgs(src string, stream int, from time.Duration) []string {
	args := []string{"-hide_banner", "-v", "error", "-of", "csv=p=0",
		"-select_streams", strconv.Itoa(stream),
		"-read_intervals", FormatSeconds(from) + "%",
		"-show_entries", "packet=pts_time"}
	return append(args, InputArgs(src)...)
}

// Probe describes src. It fails with a *SourceError when src has no video
// stream or cannot be read.
//
// It runs one ffprobe (ProbeTailArgs) where that finds the last frame,
// and otherwise describes the streams and looks for the last frame's packet
// in separate runs.
func (r Runner) Probe(ctx context.Context, src string) (Media, error) {
	var (
		pj   probeJSON
		tail []packetJSON
	)
	out, err := r.probeTail(ctx, src)
	if err != nil && ctx.Err() != nil {
		return Media{}, err
	}
	var both struct {
		probeJSON
		packetsJSON
	}
	if err != nil || json.Unmarshal(out, &both) != nil || len(both.Streams) == 0 {
		// The seek past the end failed, or said nothing of the streams:
		// describe them on their own.
		out, _, err := r.run(ctx, r.FFprobe, ProbeArgs(src))
		if err != nil {
			if ctx.Err() != nil {
				return Media{}, err
			}
			return Media{}, &SourceError{Reason: "the source could not be read as media: it is damaged, truncated or not a video", Err: err}
		}
		if err := json.Unmarshal(out, &pj); err != nil {
			return Media{}, &SourceError{Reason: "the source could not be read as media", Err: err}
		}
	} else {
		pj, tail = both.probeJSON, both.Packets
		if !seeksByIndex(pj.Format.FormatName) {
			tail = nil // found by the slower, surer way below
		}
	}
	m := Media{FormatName: pj.Format.FormatName, SARNum: 1, SARDen: 1}
	m.Size, _ = strconv.ParseInt(pj.Format.Size, 10, 64)
	m.Start = parseSeconds(pj.Format.StartTime)
	video := -1
	var streamDur, fmtDur time.Duration
	for _, s := range pj.Streams {
		if s.CodecType != "video" || s.Disposition.AttachedPic == 1 || s.Width == 0 {
			continue
		}
		video = s.Index
		m.Stream = s.Index
		if n, d, ok := ratio(s.TimeBase, "/"); ok && n > 0 && d > 0 {
			m.TBNum, m.TBDen = int64(n), int64(d)
		}
		m.Codec = s.CodecName
		m.Width, m.Height = s.Width, s.Height
		if n, d, ok := ratio(s.SAR, ":"); ok && n > 0 && d > 0 {
			m.SARNum, m.SARDen = n, d
		}
		fr := rate(s.AvgFrameRate)
		if fr <= 0 || fr > 1000 {
			fr = rate(s.RFrameRate)
		}
		if fr <= 0 || fr > 1000 {
			fr = 25
		}
		m.FrameDur = seconds(1 / fr)
		m.VideoStart = parseSeconds(s.StartTime)
		streamDur = parseSeconds(s.Duration)
		if streamDur == 0 && s.Tags.Duration != "" {
			streamDur = parseClock(s.Tags.Duration)
		}
		m.Transfer = s.Transfer
		rot := 0.0
		if s.Tags.Rotate != "" {
			v, _ := strconv.ParseFloat(s.Tags.Rotate, 64)
			rot = v // clockwise in the legacy tag
		}
		for _, sd := range s.SideData {
			if strings.EqualFold(sd.Type, "Display Matrix") {
				rot = -sd.Rotation // the matrix angle is counter-clockwise
			}
		}
		m.Rotation = ((int(math.Round(rot/90))*90)%360 + 360) % 360
		break
	}
	if video < 0 {
		var others []string
		for _, s := range pj.Streams {
			if s.CodecType != "" && s.CodecName != "" {
				others = append(others, s.CodecType+" ("+s.CodecName+")")
			}
		}
		if len(others) > 0 {
			return Media{}, &SourceError{Reason: "the source has no video stream, only " + strings.Join(others, ", ")}
		}
		return Media{}, &SourceError{Reason: "the source has no video stream"}
	}
	if still(pj.Format.FormatName) {
		return Media{}, &SourceError{Reason: fmt.Sprintf("the source is a still image (%s), not a video", m.Codec)}
	}
	fmtDur = parseSeconds(pj.Format.Duration)

	// The last frame: read the packets near the end of the video stream.
	// The container's duration may be longer than the video (audio that
	// outlasts it), so it is only a hint for where to look.
	end := streamDur
	if end == 0 {
		end = fmtDur
	}
	last, ok := lastOf(tail, video)
	if !ok {
		from := m.VideoStart + end - 10*time.Second
		if from < m.Start {
			from = m.Start
		}
		last, ok = r.lastPTS(ctx, src, video, from)
		if !ok && from > m.Start {
			last, ok = r.lastPTS(ctx, src, video, m.Start)
		}
	}
	if !ok {
		if ctx.Err() != nil {
			return Media{}, ctx.Err()
		}
		if end == 0 {
			return Media{}, &SourceError{Reason: "the video stream has no frames"}
		}
		last = m.VideoStart + end - m.FrameDur
	}
	if last < m.VideoStart {
		last = m.VideoStart
	}
	// A video stream whose header promises much more than its frames
	// deliver is a partial file: an interrupted upload or download.
	if ok && streamDur > 0 {
		slack := max(2*time.Second, streamDur/10)
		if got := last + m.FrameDur - m.VideoStart; got < streamDur-slack {
			return Media{}, &SourceError{Reason: fmt.Sprintf("the source is truncated: its video stream is declared %.3fs long, but its frames end at %.3fs (an interrupted upload or download?)", streamDur.Seconds(), got.Seconds())}
		}
	}
	m.LastFrame = last
	return m, nil
}

// maxProbeOutput bounds what the one-run probe may print (a few hundred
// bytes a packet): past it, as with a source that never ends, the run is
// stopped and the last frame looked for the way that keeps memory flat.
const maxProbeOutput = 8 << 20

// errProbeOutput is a one-run probe that printed too much.
var errProbeOutput = errors.New("ffprobe printed too much")

// probeTail runs ProbeTailArgs and returns what it printed.
func (r Runner) probeTail(ctx context.Context, src string) ([]byte, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := r.command(cctx, r.FFprobe, ProbeTailArgs(src))
	out := &cappedBuffer{max: maxProbeOutput, over: cancel}
	cmd.Stdout = out
	cmd.Stderr = io.Discard
	err := cmd.Start()
	if err == nil {
		done := r.track(r.FFprobe)
		err = cmd.Wait()
		done()
	}
	if out.exceeded {
		return nil, errProbeOutput
	}
	return out.b.Bytes(), err
}

// cappedBuffer keeps up to max bytes; past them it drops what comes and
// calls over.
type cappedBuffer struct {
	b        bytes.Buffer
	max      int
	over     func()
	exceeded bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.exceeded || c.b.Len()+len(p) > c.max {
		if !c.exceeded {
			c.exceeded = true
			c.over()
		}
		return len(p), nil
	}
	return c.b.Write(p)
}

// seeksByIndex reports whether the demuxer of ffprobe's format name seeks
// through the file's own index (MP4 and QuickTime, Matroska and WebM), so
// that a seek past the end lands on the last keyframe and the packets from
// there hold the last frame. Other formats (MPEG-TS, AVI, raw streams) seek
// by searching and may land elsewhere.
func seeksByIndex(format string) bool {
	return strings.Contains(format, "mp4") || strings.HasPrefix(format, "mov,") || strings.Contains(format, "matroska")
}

// still reports whether ffprobe's format name is that of a single image:
// the image2 demuxer or one of the image pipes (png_pipe, jpeg_pipe, ...).
// Animated formats (gif, apng, webp animations) have demuxers of their own.
func still(format string) bool {
	return format == "image2" || strings.HasSuffix(format, "_pipe")
}

// lastPTS returns the largest packet presentation time of the stream from
// `from` on. It reads ffprobe's lines as they come and keeps only the
// largest, so that its memory stays flat however many packets there are:
// a source without an end is read until the source's own limit stops it.
func (r Runner) lastPTS(ctx context.Context, src string, stream int, from time.Duration) (time.Duration, bool) {
	cmd := r.command(ctx, r.FFprobe, TailPacketsArgs(src, stream, from))
	cmd.Stderr = io.Discard // a failure is reported as not found
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, false
	}
	if err := cmd.Start(); err != nil {
		return 0, false
	}
	defer r.track(r.FFprobe)()
	var last time.Duration
	found := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(sc.Text()), ","), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			continue // N/A
		}
		if t := seconds(f); !found || t > last {
			last, found = t, true
		}
	}
	if sc.Err() != nil {
		_ = cmd.Process.Kill()
	}
	if err := cmd.Wait(); err != nil || sc.Err() != nil {
		return 0, false
	}
	return last, found
}

// lastOf returns the largest presentation time among the packets of
// stream.
func lastOf(packets []packetJSON, stream int) (time.Duration, bool) {
	var last time.Duration
	found := false
	for _, p := range packets {
		if p.Stream != stream || p.PTS == "" || p.PTS == "N/A" {
			continue
		}
		if t := parseSeconds(p.PTS); !found || t > last {
			last, found = t, true
		}
	}
	return last, found
}

func parseSeconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return seconds(f)
}

// parseClock parses "HH:MM:SS.fffffffff" as Matroska's DURATION tag has it.
func parseClock(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + seconds(sec)
}

func ratio(s, sep string) (int, int, bool) {
	a, b, ok := strings.Cut(s, sep)
	if !ok {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(a)
	d, err2 := strconv.Atoi(b)
	return n, d, err1 == nil && err2 == nil
}

func rate(s string) float64 {
	n, d, ok := ratio(s, "/")
	if !ok || d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// SourceError is a source that cannot be used: unreadable, not a video, or
// without frames. Its message tells the user what is wrong.
type SourceError struct {
	Reason string
	Err    error
}

func (e *SourceError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%v)", e.Reason, e.Err)
	}
	return e.Reason
}

func (e *SourceError) Unwrap() error { return e.Err }
