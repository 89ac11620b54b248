package ffmpeg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// File is what ffprobe says of a video file thumbd made: what a status
// reports is measured, not what was asked for.
type File struct {
	Size     int64         // bytes
	Duration time.Duration // of the file
	Bitrate  int           // kbps, of the whole file

	Width, Height int
	FrameRateNum  int // frame rate as a reduced fraction; 0/0 when unknown
	FrameRateDen  int
	VideoBitrate  int    // kbps, of the video stream
	DAR, SAR      string // display and sample aspect ratios, "3:2"
	VideoCodec    string // as ffprobe names it: h264, vp9
	AudioCodec    string // aac, opus; "" when the file has no sound
}

type fileProbeJSON struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		SAR       string `json:"sample_aspect_ratio"`
		DAR       string `json:"display_aspect_ratio"`
		AvgRate   string `json:"avg_frame_rate"`
		RRate     string `json:"r_frame_rate"`
		BitRate   string `json:"bit_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
		Size     string `json:"size"`
		BitRate  string `json:"bit_rate"`
	} `json:"format"`
}

// ProbeFileArgs builds the ffprobe invocation that describes a video file
// thumbd made.
func ProbeFileArgs(path string) []string {
	return []string{"-hide_banner", "-v", "error", "-of", "json",
		"-show_entries", "format=duration,size,bit_rate:stream=codec_type,codec_name,width,height,sample_aspect_ratio,display_aspect_ratio,avg_frame_rate,r_frame_rate,bit_rate",
		path}
}

// ProbeFile describes a video file thumbd made.
func (r Runner) ProbeFile(ctx context.Context, path string) (File, error) {
	out, _, err := r.run(ctx, r.FFprobe, ProbeFileArgs(path))
	if err != nil {
		return File{}, err
	}
	var pj fileProbeJSON
	if err := json.Unmarshal(out, &pj); err != nil {
		return File{}, fmt.Errorf("reading ffprobe's description of the output: %w", err)
	}
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	vf, video := describe(pj, size)
	if !video {
		return vf, errors.New("the output has no video stream")
	}
	if vf.VideoBitrate == 0 && vf.Duration > 0 {
		// WebM keeps no per-stream bitrate: add up the video packets.
		out, _, err := r.run(ctx, r.FFprobe, []string{"-hide_banner", "-v", "error", "-select_streams", "v:0",
			"-show_entries", "packet=size", "-of", "csv=p=0", path})
		if err == nil {
			var total int64
			for _, l := range strings.Fields(string(out)) {
				n, _ := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
				total += n
			}
			vf.VideoBitrate = int(float64(total) * 8 / vf.Duration.Seconds() / 1000)
		}
	}
	return vf, nil
}

// describe reads what ffprobe said of a file; size, when not 0, is the
// file's size as the file system knows it. It reports whether the file has
// a video stream.
func describe(pj fileProbeJSON, size int64) (File, bool) {
	var vf File
	vf.Size, _ = strconv.ParseInt(pj.Format.Size, 10, 64)
	if size > 0 {
		vf.Size = size
	}
	vf.Duration = parseSeconds(pj.Format.Duration)
	if vf.Duration > 0 {
		vf.Bitrate = int(float64(vf.Size) * 8 / vf.Duration.Seconds() / 1000)
	}
	video := false
	for _, s := range pj.Streams {
		switch s.CodecType {
		case "video":
			if video {
				continue
			}
			video = true
			vf.VideoCodec, vf.Width, vf.Height = s.CodecName, s.Width, s.Height
			vf.FrameRateNum, vf.FrameRateDen = reducedRate(s.AvgRate)
			if vf.FrameRateNum == 0 {
				vf.FrameRateNum, vf.FrameRateDen = reducedRate(s.RRate)
			}
			if n, err := strconv.Atoi(s.BitRate); err == nil {
				vf.VideoBitrate = n / 1000
			}
			vf.SAR = s.SAR
			if n, d, ok := ratio(s.SAR, ":"); !ok || n <= 0 || d <= 0 {
				vf.SAR = "1:1"
			}
			vf.DAR = s.DAR
			if n, d, ok := ratio(s.DAR, ":"); !ok || n <= 0 || d <= 0 {
				sn, sd, _ := ratio(vf.SAR, ":")
				w, h := vf.Width*sn, vf.Height*sd
				if g := gcd(w, h); g > 0 {
					vf.DAR = fmt.Sprintf("%d:%d", w/g, h/g)
				}
			}
		case "audio":
			if vf.AudioCodec == "" {
				vf.AudioCodec = s.CodecName
			}
		}
	}
	return vf, video
}

// reducedRate reads ffprobe's "30000/1001" as a reduced fraction, or 0, 0.
func reducedRate(s string) (num, den int) {
	n, d, ok := ratio(s, "/")
	if !ok || n <= 0 || d <= 0 {
		return 0, 0
	}
	g := gcd(n, d)
	return n / g, d / g
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
