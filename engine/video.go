package engine

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

// Video reports whether the kind is a video file (mp4 or webm).
func (k OutputKind) Video() bool { return k == KindMP4 || k == KindWebM }

// VideoSettings is what an mp4 or webm output asks for beyond its size.
// Zero values take the defaults.
type VideoSettings struct {
	Duration       time.Duration // length of the clip from Output.StartTime; 0: to the end
	FrameRate      Rate          // zero: the source's
	FrameRateLimit Rate          // zero: no limit; applies only when FrameRate is zero
	KeyframeFrames int           // GOP length in frames; 0: KeyframeTime or the default
	KeyframeTime   time.Duration // GOP length in time ("3s"); 0: the default
	Bitrate        int           // video kbps; 0: constant quality
	CRF            *int          // constant rate factor; nil: the codec's default
	VideoCodec     string        // ffmpeg encoder name; "": the container's default
	AudioCodec     string        // ffmpeg encoder name; "": the container's default
	AudioBitrate   int           // kbps; 0: defaultAudioBitrate
	AudioRate      int           // sample rate in Hz; 0: 44100, or 48000 for Opus
	AudioChannels  int           // 0: defaultAudioChannels
	AudioMute      bool          // replace the sound with silence
	PixelFormat    string        // "": yuv420p
	Profile        string        // H.264 or H.265 profile; "": main with 4:2:0 pictures
	Preset         string        // speed preset in x264's names; "": the codec's default
	Deinterlace    bool
	FileExtension  string // without the dot; "": the container's
}

// Defaults of video outputs, as Qencode documents them.
const (
	defaultKeyframe      = 90 // frames between keyframes
	defaultAudioBitrate  = 64 // kbps
	defaultAudioRate     = 44100
	defaultAudioChannels = 2
)

// Limits on what a video output may ask for.
const (
	maxFrameRate    = 240
	maxKeyframe     = 10000 // frames
	maxKeyframeTime = 60 * time.Second
	maxBitrate      = 500000 // kbps
	maxAudioBitrate = 1024   // kbps
	maxChannels     = 8
)

// Rate is a frame rate as a fraction of whole numbers.
type Rate struct{ Num, Den int }

// IsZero reports whether the rate is unset.
func (r Rate) IsZero() bool { return r.Num == 0 || r.Den == 0 }

// Float is the rate in frames per second.
func (r Rate) Float() float64 {
	if r.IsZero() {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

// String renders the rate as ffmpeg reads it: "30000/1001", "25".
func (r Rate) String() string {
	if r.Den == 1 {
		return strconv.Itoa(r.Num)
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

// Decimal renders the rate as people write it: "29.97", "25", "12.5".
func (r Rate) Decimal() string {
	return strconv.FormatFloat(math.Round(r.Float()*1000)/1000, 'f', -1, 64)
}

// ParseRate reads a frame rate written as a decimal ("29.97", "25") or a
// fraction ("30000/1001"). The NTSC rates written as decimals (23.976,
// 23.98, 29.97, 59.94, 119.88) become their exact N×1000/1001 fractions.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, "/"); ok {
		n, err1 := strconv.Atoi(strings.TrimSpace(a))
		d, err2 := strconv.Atoi(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || n <= 0 || d <= 0 {
			return Rate{}, fmt.Errorf("%q is not a frame rate like 25, 29.97 or 30000/1001", s)
		}
		g := gcd(n, d)
		return Rate{n / g, d / g}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return Rate{}, fmt.Errorf("%q is not a frame rate like 25, 29.97 or 30000/1001", s)
	}
	if v != math.Trunc(v) {
		if n := math.Round(v * 1.001); math.Abs(v*1.001-n) < 0.01 && n >= 1 {
			return Rate{int(n) * 1000, 1001}, nil
		}
	}
	n := int(math.Round(v * 1000))
	if n == 0 {
		return Rate{}, fmt.Errorf("%q is not a frame rate like 25, 29.97 or 30000/1001", s)
	}
	g := gcd(n, 1000)
	return Rate{n / g, 1000 / g}, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// container is what the engine knows of a video output format.
type container struct {
	muxer       string
	ext         string
	contentType string
	video       []string // encoders it holds; the first is the default
	audio       []string
}

var containers = map[OutputKind]container{
	KindMP4: {muxer: "mp4", ext: "mp4", contentType: "video/mp4",
		video: []string{"libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1"},
		audio: []string{"aac", "libfdk_aac", "libmp3lame", "libopus"}},
	KindWebM: {muxer: "webm", ext: "webm", contentType: "video/webm",
		video: []string{"libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1"},
		audio: []string{"libopus", "libvorbis"}},
}

// codecInfo is what the engine knows of a video encoder.
type codecInfo struct {
	crfMin, crfMax, crfDefault int
	cost                       float64 // encoding cost relative to libx264, for progress weights
}

var videoCodecs = map[string]codecInfo{
	"libx264":    {0, 51, 23, 1},
	"libx265":    {0, 51, 28, 4},
	"libvpx":     {4, 63, 10, 1.5},
	"libvpx-vp9": {0, 63, 32, 3},
	"libsvtav1":  {1, 63, 35, 3},
	"libaom-av1": {0, 63, 32, 6},
}

// pixelFormats are the pixel formats a video output may ask for; whether
// its encoder takes one is checked against ffmpeg when the task starts.
var pixelFormats = []string{"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}

// presets are the speed presets, in x264's names, fastest first.
var presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}

// profiles are the profiles each encoder takes, with the pixel formats each
// profile can hold.
var profiles = map[string]map[string][]string{
	"libx264": {
		"baseline": {"yuv420p", "yuvj420p"},
		"main":     {"yuv420p", "yuvj420p"},
		"high":     {"yuv420p", "yuvj420p"},
		"high422":  {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p"},
		"high444":  pixelFormats,
	},
	"libx265": {
		"main":      {"yuv420p", "yuvj420p"},
		"main422-8": {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p"},
		"main444-8": pixelFormats,
	},
}

// resolved returns the settings with the container's codecs and every
// default filled in.
func (v VideoSettings) resolved(kind OutputKind) VideoSettings {
	c := containers[kind]
	if v.VideoCodec == "" && len(c.video) > 0 {
		v.VideoCodec = c.video[0]
	}
	if v.AudioCodec == "" && len(c.audio) > 0 {
		v.AudioCodec = c.audio[0]
	}
	if v.AudioBitrate == 0 {
		v.AudioBitrate = defaultAudioBitrate
	}
	if v.AudioRate == 0 {
		v.AudioRate = defaultAudioRate
		if v.AudioCodec == "libopus" {
			v.AudioRate = 48000
		}
	}
	if v.AudioChannels == 0 {
		v.AudioChannels = defaultAudioChannels
	}
	if v.PixelFormat == "" {
		v.PixelFormat = "yuv420p"
	}
	if v.Profile == "" && v.VideoCodec == "libx264" && slices.Contains(profiles["libx264"]["main"], v.PixelFormat) {
		v.Profile = "main"
	}
	if v.FileExtension == "" {
		v.FileExtension = c.ext
	}
	return v
}

var extensionRE = regexp.MustCompile(`^[A-Za-z0-9]{1,10}$`)

// validateVideo checks the fields of an mp4 or webm output.
func validateVideo(o Output) error {
	v := o.Video.resolved(o.Kind)
	c := containers[o.Kind]
	if o.StartTime != nil && *o.StartTime < 0 {
		return &ValidationError{Field: "start_time", Reason: "must not be negative"}
	}
	if o.Video.Duration < 0 {
		return &ValidationError{Field: "duration", Reason: "must be a positive number of seconds"}
	}
	for _, r := range []struct {
		name string
		r    Rate
	}{{"framerate", v.FrameRate}, {"framerate_limit", v.FrameRateLimit}} {
		if !r.r.IsZero() && (r.r.Float() < 1 || r.r.Float() > maxFrameRate) {
			return &ValidationError{Field: r.name, Reason: fmt.Sprintf("must be between 1 and %d frames per second", maxFrameRate)}
		}
	}
	if v.KeyframeFrames < 0 || v.KeyframeFrames > maxKeyframe {
		return &ValidationError{Field: "keyframe", Reason: fmt.Sprintf("must be between 1 and %d frames", maxKeyframe)}
	}
	if v.KeyframeTime < 0 || v.KeyframeTime > maxKeyframeTime {
		return &ValidationError{Field: "keyframe", Reason: fmt.Sprintf("must be at most %v", maxKeyframeTime)}
	}
	if v.Bitrate < 0 || v.Bitrate > maxBitrate {
		return &ValidationError{Field: "bitrate", Reason: fmt.Sprintf("must be between 1 and %d kbps", maxBitrate)}
	}
	if !slices.Contains(c.video, v.VideoCodec) {
		return &ValidationError{Field: "video_codec", Reason: fmt.Sprintf("%q cannot go in %s; use one of %s", v.VideoCodec, o.Kind, strings.Join(c.video, ", "))}
	}
	if !slices.Contains(c.audio, v.AudioCodec) {
		return &ValidationError{Field: "audio_codec", Reason: fmt.Sprintf("%q cannot go in %s; use one of %s", v.AudioCodec, o.Kind, strings.Join(c.audio, ", "))}
	}
	ci := videoCodecs[v.VideoCodec]
	if v.CRF != nil && (*v.CRF < ci.crfMin || *v.CRF > ci.crfMax) {
		return &ValidationError{Field: "quality", Reason: fmt.Sprintf("is a CRF; for %s it must be between %d and %d", v.VideoCodec, ci.crfMin, ci.crfMax)}
	}
	if v.VideoCodec == "libsvtav1" && v.CRF != nil && v.Bitrate > 0 {
		return &ValidationError{Field: "bitrate", Reason: "libsvtav1 takes either bitrate or quality, not both"}
	}
	if v.AudioBitrate < 0 || v.AudioBitrate > maxAudioBitrate {
		return &ValidationError{Field: "audio_bitrate", Reason: fmt.Sprintf("must be between 8 and %d kbps", maxAudioBitrate)}
	}
	if v.AudioBitrate > 0 && v.AudioBitrate < 8 {
		return &ValidationError{Field: "audio_bitrate", Reason: fmt.Sprintf("must be between 8 and %d kbps", maxAudioBitrate)}
	}
	switch v.AudioRate {
	case 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000:
	default:
		return &ValidationError{Field: "audio_sample_rate", Reason: "must be one of 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000"}
	}
	maxCh := maxChannels
	if v.AudioCodec == "libmp3lame" {
		maxCh = 2
	}
	if v.AudioChannels < 1 || v.AudioChannels > maxCh {
		return &ValidationError{Field: "audio_channels_number", Reason: fmt.Sprintf("must be between 1 and %d for %s", maxCh, v.AudioCodec)}
	}
	if !slices.Contains(pixelFormats, v.PixelFormat) {
		return &ValidationError{Field: "pix_format", Reason: fmt.Sprintf("must be one of %s", strings.Join(pixelFormats, ", "))}
	}
	if v.Profile != "" {
		byProfile, ok := profiles[v.VideoCodec]
		if !ok {
			return &ValidationError{Field: "profile", Reason: "applies only to the libx264 and libx265 video codecs"}
		}
		fmts, ok := byProfile[v.Profile]
		if !ok {
			names := make([]string, 0, len(byProfile))
			for n := range byProfile {
				names = append(names, n)
			}
			slices.Sort(names)
			return &ValidationError{Field: "profile", Reason: fmt.Sprintf("%q is not a %s profile; use one of %s", v.Profile, v.VideoCodec, strings.Join(names, ", "))}
		}
		if !slices.Contains(fmts, v.PixelFormat) {
			return &ValidationError{Field: "profile", Reason: fmt.Sprintf("%s cannot hold %s pictures", v.Profile, v.PixelFormat)}
		}
	}
	if v.Preset != "" && !slices.Contains(presets, v.Preset) {
		return &ValidationError{Field: "video_codec_parameters.preset", Reason: fmt.Sprintf("must be one of %s", strings.Join(presets, ", "))}
	}
	if !extensionRE.MatchString(v.FileExtension) {
		return &ValidationError{Field: "file_extension", Reason: "must be 1 to 10 letters or digits, like mp4"}
	}
	return nil
}

// videoPlan is the work for one mp4 or webm output.
type videoPlan struct {
	index  int
	out    Output
	set    VideoSettings // resolved
	enc    videoEncode
	geo    Geometry
	clip   time.Duration // expected length of the output
	weight float64       // expected encoding cost, for progress
	part   int           // the output's part of the task's progress meter
	file   producedFile  // filled once encoded
}

// planVideo decides how an mp4 or webm output is made from the source m:
// its picture size, frame rate, GOP, clip and the ffmpeg arguments.
func planVideo(idx int, o Output, m ffmpeg.Media, dir string, threads int) (*videoPlan, error) {
	v := o.Video.resolved(o.Kind)
	geo, err := videoGeometry(m, o)
	if err != nil {
		return nil, err
	}
	dur := m.Duration()
	var start time.Duration
	if o.StartTime != nil {
		start = *o.StartTime
	}
	if start >= dur {
		return nil, &ValidationError{Field: "start_time", Reason: fmt.Sprintf("%.3fs is at or past the end of the video, which is %.3fs long", start.Seconds(), dur.Seconds())}
	}
	clip := dur - start
	if v.Duration > 0 {
		clip = min(clip, v.Duration)
	}

	srcRate := 1 / m.FrameDur.Seconds()
	if m.FrameDur <= 0 {
		srcRate = 25
	}
	rate := v.FrameRate
	if rate.IsZero() && !v.FrameRateLimit.IsZero() && srcRate > v.FrameRateLimit.Float()+0.001 {
		rate = v.FrameRateLimit
	}
	fps := srcRate
	if !rate.IsZero() {
		fps = rate.Float()
	}
	gop, fixed := defaultKeyframe, false
	switch {
	case v.KeyframeFrames > 0:
		gop, fixed = v.KeyframeFrames, true
	case v.KeyframeTime > 0:
		gop, fixed = max(1, int(math.Round(v.KeyframeTime.Seconds()*fps))), true
	}

	var chain []string
	if v.Deinterlace {
		chain = append(chain, "yadif=mode=send_frame:deint=all")
	}
	if !rate.IsZero() {
		chain = append(chain, "fps="+rate.String())
	}
	if m.HDR() {
		chain = append(chain, tonemapChain)
	}
	chain = append(chain, videoScale(geo, v.PixelFormat))

	c := containers[o.Kind]
	p := &videoPlan{index: idx, out: o, set: v, geo: geo, clip: clip}
	p.enc = videoEncode{
		Seek:        m.VideoStart - m.Start + start,
		Duration:    v.Duration,
		Filter:      strings.Join(chain, ","),
		Muxer:       c.muxer,
		VideoCodec:  v.VideoCodec,
		CRF:         v.CRF,
		Bitrate:     v.Bitrate,
		Preset:      v.Preset,
		Profile:     v.Profile,
		GOP:         gop,
		FixedGOP:    fixed,
		AudioCodec:  v.AudioCodec,
		AudioRate:   v.AudioRate,
		AudioBits:   v.AudioBitrate,
		Channels:    v.AudioChannels,
		Mute:        v.AudioMute,
		Threads:     max(1, threads),
		Out:         filepath.Join(dir, fmt.Sprintf("o%d_video.%s", idx, c.ext)),
		FastStart:   c.muxer == "mp4",
		HEVCTagHvc1: c.muxer == "mp4" && v.VideoCodec == "libx265",
	}
	frames := clip.Seconds() * fps
	p.weight = 0.3 + frames*float64(geo.W*geo.H)/30e6*videoCodecs[v.VideoCodec].cost
	return p, nil
}

// videoGeometry is Fit for a video picture: both sides even, as 4:2:0 and
// 4:2:2 encoders need. An odd side, given or computed, is rounded down.
func videoGeometry(m ffmpeg.Media, o Output) (Geometry, error) {
	dw, dh := m.DisplaySize()
	g, err := Fit(dw, dh, o)
	if err != nil {
		return g, err
	}
	even := func(v int) int { return max(2, v&^1) }
	if g.W == even(g.W) && g.H == even(g.H) {
		return g, nil
	}
	box := o
	box.Width, box.Height, box.Resolution = even(g.W), even(g.H), 0
	return Fit(dw, dh, box)
}

// videoScale is the part of a video's filter chain that sizes the picture.
func videoScale(g Geometry, pixfmt string) string {
	chain := fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1", g.ScaleW, g.ScaleH)
	switch {
	case g.Crop:
		chain += fmt.Sprintf(",crop=%d:%d:%d:%d", g.W, g.H, g.X, g.Y)
	case g.ScaleW != g.W || g.ScaleH != g.H:
		chain += fmt.Sprintf(",pad=%d:%d:%d:%d:color=black", g.W, g.H, g.X, g.Y)
	}
	return chain + ",format=" + pixfmt
}

// videoThreads is how many threads one encoder may use so that the
// engine's ffmpeg processes, together, use about every CPU.
func (e *Engine) videoThreads() int {
	return max(1, runtime.NumCPU()/e.cfg.Workers)
}

// videoEncode is one ffmpeg run that makes a video file.
type videoEncode struct {
	Seek     time.Duration // input seek, from the start of the file
	Duration time.Duration // length of the output; 0: to the end of the source
	Filter   string        // video filter chain
	Muxer    string        // mp4 or webm

	VideoCodec string
	CRF        *int // nil: the codec's default (with no Bitrate)
	Bitrate    int  // kbps; with CRF, a cap
	Preset     string
	Profile    string
	GOP        int  // frames between keyframes
	FixedGOP   bool // exactly GOP: no extra keyframes at scene changes

	AudioCodec string
	AudioRate  int
	AudioBits  int // kbps
	Channels   int
	Mute       bool // silence instead of the source's sound

	Threads     int
	Out         string
	FastStart   bool // move the mp4 index to the front
	HEVCTagHvc1 bool // tag H.265 in mp4 as hvc1, which Apple players need
}

// encodeArgs builds the ffmpeg invocation for a videoEncode. ffmpeg reports its
// progress as key=value lines on stdout (-progress pipe:1).
func encodeArgs(src string, j videoEncode) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1"}
	if j.Seek > 0 {
		args = append(args, "-ss", ffmpeg.FormatSeconds(j.Seek))
	}
	args = append(args, ffmpeg.InputArgs(src)...)
	if j.Mute {
		layout := "stereo"
		if j.Channels == 1 {
			layout = "mono"
		}
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("anullsrc=channel_layout=%s:sample_rate=%d", layout, j.AudioRate))
	}
	args = append(args, "-map", "0:v:0")
	if j.Mute {
		args = append(args, "-map", "1:a:0", "-shortest")
	} else {
		args = append(args, "-map", "0:a:0?")
	}
	if j.Duration > 0 {
		args = append(args, "-t", ffmpeg.FormatSeconds(j.Duration))
	}
	args = append(args, "-filter:v", j.Filter)
	args = append(args, videoCodecArgs(j)...)
	args = append(args, "-threads", strconv.Itoa(max(1, j.Threads)))
	args = append(args, "-c:a", j.AudioCodec, "-b:a", fmt.Sprintf("%dk", j.AudioBits),
		"-ar", strconv.Itoa(j.AudioRate), "-ac", strconv.Itoa(j.Channels))
	args = append(args, "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1")
	if j.FastStart {
		args = append(args, "-movflags", "+faststart")
	}
	return append(args, "-f", j.Muxer, j.Out)
}

// videoCodecArgs is the encoder, rate control, speed and GOP part of an
// encode.
func videoCodecArgs(j videoEncode) []string {
	ci := videoCodecs[j.VideoCodec]
	crf := ci.crfDefault
	if j.CRF != nil {
		crf = *j.CRF
	}
	useCRF := j.CRF != nil || j.Bitrate == 0
	kbps := func(n int) string { return fmt.Sprintf("%dk", n) }
	gop := strconv.Itoa(max(1, j.GOP))
	args := []string{"-c:v", j.VideoCodec}
	switch j.VideoCodec {
	case "libx264", "libx265":
		if j.Preset != "" {
			args = append(args, "-preset", j.Preset)
		}
		switch {
		case useCRF && j.Bitrate > 0:
			args = append(args, "-crf", strconv.Itoa(crf), "-maxrate", kbps(j.Bitrate), "-bufsize", kbps(2*j.Bitrate))
		case useCRF:
			args = append(args, "-crf", strconv.Itoa(crf))
		default:
			args = append(args, "-b:v", kbps(j.Bitrate))
		}
		if j.Profile != "" {
			args = append(args, "-profile:v", j.Profile)
		}
		if j.VideoCodec == "libx264" {
			args = append(args, "-g", gop)
			if j.FixedGOP {
				args = append(args, "-keyint_min", gop, "-sc_threshold", "0")
			}
		} else {
			params := "log-level=error:keyint=" + gop
			if j.FixedGOP {
				params += ":min-keyint=" + gop + ":scenecut=0"
			}
			args = append(args, "-x265-params", params)
			if j.HEVCTagHvc1 {
				args = append(args, "-tag:v", "hvc1")
			}
		}
	case "libvpx", "libvpx-vp9":
		switch {
		case useCRF && j.Bitrate > 0:
			args = append(args, "-crf", strconv.Itoa(crf), "-b:v", kbps(j.Bitrate))
		case useCRF && j.VideoCodec == "libvpx":
			// VP8 needs a bitrate with its CRF: a generous cap.
			args = append(args, "-crf", strconv.Itoa(crf), "-b:v", "10M")
		case useCRF:
			args = append(args, "-crf", strconv.Itoa(crf), "-b:v", "0")
		default:
			args = append(args, "-b:v", kbps(j.Bitrate))
		}
		args = append(args, "-deadline", "good", "-cpu-used", strconv.Itoa(cpuUsed(j.Preset, 8)))
		if j.VideoCodec == "libvpx-vp9" {
			args = append(args, "-row-mt", "1")
		}
		args = append(args, "-g", gop)
		if j.FixedGOP {
			args = append(args, "-keyint_min", gop)
		}
	case "libaom-av1":
		if useCRF {
			args = append(args, "-crf", strconv.Itoa(crf))
			if j.Bitrate == 0 {
				args = append(args, "-b:v", "0")
			}
		}
		if j.Bitrate > 0 {
			args = append(args, "-b:v", kbps(j.Bitrate))
		}
		args = append(args, "-cpu-used", strconv.Itoa(cpuUsed(j.Preset, 8)), "-row-mt", "1", "-g", gop)
		if j.FixedGOP {
			args = append(args, "-keyint_min", gop)
		}
	case "libsvtav1":
		if useCRF {
			args = append(args, "-crf", strconv.Itoa(crf))
		} else {
			args = append(args, "-b:v", kbps(j.Bitrate))
		}
		args = append(args, "-preset", strconv.Itoa(svtPreset(j.Preset)), "-g", gop)
	}
	return args
}

// cpuUsed maps an x264 preset name to libvpx's and libaom's -cpu-used
// (higher is faster), capped at top. No preset: 4, a common VOD choice.
func cpuUsed(preset string, top int) int {
	i := slices.Index(presets, preset)
	if i < 0 {
		return min(4, top)
	}
	// ultrafast 8, superfast 7, veryfast 6, faster 5, fast 4, medium 4,
	// slow 2, slower 1, veryslow 0, placebo 0.
	return min(top, []int{8, 7, 6, 5, 4, 4, 2, 1, 0, 0}[i])
}

// svtPreset maps an x264 preset name to SVT-AV1's preset (0 slowest, 12
// fastest). No preset: 8.
func svtPreset(preset string) int {
	i := slices.Index(presets, preset)
	if i < 0 {
		return 8
	}
	return []int{12, 11, 10, 9, 8, 8, 6, 4, 2, 1}[i]
}
