package taskrow

import (
	"fmt"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// Version is the layout of the spec and status documents Encode writes.
// Each document carries it in its "Version" key; one without it was written
// before versions existed, in the layout of version 1. Decode refuses a
// document of a later version than it knows: a newer thumbd wrote it.
//
// The documents below name every stored key in a tag, so renaming a field
// of an engine type changes nothing stored (the conversions here stop
// compiling instead). A change of what is stored is a new Version, and
// Decode keeps reading the older ones; only a key added with omitempty,
// whose absence reads as its zero value and which an older thumbd may
// ignore (Query; Warnings, Times, Sizes, Manifest), keeps the version.
const Version = 1

// checkVersion returns the version of a stored document from its Version
// key: 1 when it has none (0), an error for one this package cannot read.
func checkVersion(v int) (int, error) {
	switch {
	case v == 0:
		return 1, nil
	case v < 0:
		return v, fmt.Errorf("its row version %d is not one thumbd writes", v)
	case v > Version:
		return v, fmt.Errorf("it was written by a newer thumbd (row version %d; this one reads versions 1 to %d): run that version of thumbd, or a later one", v, Version)
	}
	return v, nil
}

// versioned is a stored document.
type versioned interface{ version() int }

func (d *specDoc) version() int { return d.Version }
func (d *snapDoc) version() int { return d.Version }

// specDoc is how an engine.Spec is stored.
type specDoc struct {
	Version     int          `json:"Version"`
	Source      string       `json:"Source"`
	Outputs     []outputDoc  `json:"Outputs"`
	CallbackURL string       `json:"CallbackURL"`
	Payload     string       `json:"Payload"`
	Warnings    []warningDoc `json:"Warnings,omitempty"`
	Query       string       `json:"Query,omitempty"` // the query as received, shown by the console
}

// Durations are stored as whole nanoseconds.
type outputDoc struct {
	Kind         string           `json:"Kind"`
	Time         *float64         `json:"Time"`
	FrameNumber  *int64           `json:"FrameNumber"`
	StartTime    *time.Duration   `json:"StartTime"`
	Interval     time.Duration    `json:"Interval"`
	Width        int              `json:"Width"`
	Height       int              `json:"Height"`
	Resolution   int              `json:"Resolution"`
	ResizeMode   string           `json:"ResizeMode"`
	Format       string           `json:"Format"`
	Quality      int              `json:"Quality"`
	Sprite       bool             `json:"Sprite"`
	Columns      int              `json:"Columns"`
	Rows         int              `json:"Rows"`
	Video        videoSettingsDoc `json:"Video"`
	Accuracy     string           `json:"Accuracy"`
	UserTag      string           `json:"UserTag"`
	Destinations []destinationDoc `json:"Destinations"`
	Times        []float64        `json:"Times,omitempty"`
	Sizes        []sizeDoc        `json:"Sizes,omitempty"`
	Manifest     bool             `json:"Manifest,omitempty"`
}

type sizeDoc struct {
	W int `json:"W"`
	H int `json:"H"`
}

type videoSettingsDoc struct {
	Duration       time.Duration `json:"Duration"`
	FrameRate      rateDoc       `json:"FrameRate"`
	FrameRateLimit rateDoc       `json:"FrameRateLimit"`
	KeyframeFrames int           `json:"KeyframeFrames"`
	KeyframeTime   time.Duration `json:"KeyframeTime"`
	Bitrate        int           `json:"Bitrate"`
	CRF            *int          `json:"CRF"`
	VideoCodec     string        `json:"VideoCodec"`
	AudioCodec     string        `json:"AudioCodec"`
	AudioBitrate   int           `json:"AudioBitrate"`
	AudioRate      int           `json:"AudioRate"`
	AudioChannels  int           `json:"AudioChannels"`
	AudioMute      bool          `json:"AudioMute"`
	PixelFormat    string        `json:"PixelFormat"`
	Profile        string        `json:"Profile"`
	Preset         string        `json:"Preset"`
	Deinterlace    bool          `json:"Deinterlace"`
	FileExtension  string        `json:"FileExtension"`
}

type rateDoc struct {
	Num int `json:"Num"`
	Den int `json:"Den"`
}

type destinationDoc struct {
	URL          string `json:"URL"`
	Key          string `json:"Key"`
	Secret       string `json:"Secret"`
	Permissions  string `json:"Permissions"`
	StorageClass string `json:"StorageClass"`
	CacheControl string `json:"CacheControl"`
}

// snapDoc is how an engine.Snapshot is stored.
type snapDoc struct {
	Version    int           `json:"Version"`
	State      string        `json:"State"`
	Percent    float64       `json:"Percent"`
	Error      string        `json:"Error"`
	Images     []imageDoc    `json:"Images"`
	Videos     []videoDoc    `json:"Videos"`
	Warnings   []warningDoc  `json:"Warnings"`
	Duration   time.Duration `json:"Duration"`
	SourceSize int64         `json:"SourceSize"`
	Payload    string        `json:"Payload"`
}

type imageDoc struct {
	Output   int         `json:"Output"`
	N        int         `json:"N"`
	Kind     string      `json:"Kind"`
	Format   string      `json:"Format"`
	UserTag  string      `json:"UserTag"`
	Location locationDoc `json:"Location"`
	Width    int         `json:"Width"`
	Height   int         `json:"Height"`
	Frames   []frameDoc  `json:"Frames"`
	Manifest string      `json:"Manifest,omitempty"`
}

type locationDoc struct {
	URL    string `json:"URL"`
	Type   string `json:"Type"`
	Scheme string `json:"Scheme"`
	Host   string `json:"Host"`
	Port   int    `json:"Port"`
	Bucket string `json:"Bucket"`
	Key    string `json:"Key"`
}

type frameDoc struct {
	Requested time.Duration `json:"Requested"`
	Actual    time.Duration `json:"Actual"`
	Keyframe  bool          `json:"Keyframe"`
	Strategy  string        `json:"Strategy"`
	Took      time.Duration `json:"Took"`
}

type videoDoc struct {
	Output   int           `json:"Output"`
	N        int           `json:"N"`
	Format   string        `json:"Format"`
	UserTag  string        `json:"UserTag"`
	Location locationDoc   `json:"Location"`
	Size     int64         `json:"Size"`
	Duration time.Duration `json:"Duration"`
	Bitrate  int           `json:"Bitrate"`
	Meta     videoMetaDoc  `json:"Meta"`
}

type videoMetaDoc struct {
	Width        int     `json:"Width"`
	Height       int     `json:"Height"`
	FrameRate    rateDoc `json:"FrameRate"`
	VideoBitrate int     `json:"VideoBitrate"`
	DAR          string  `json:"DAR"`
	SAR          string  `json:"SAR"`
	VideoCodec   string  `json:"VideoCodec"`
	AudioCodec   string  `json:"AudioCodec"`
}

type warningDoc struct {
	Message string `json:"Message"`
	Details string `json:"Details"`
	Tag     string `json:"Tag"`
}

// each maps a slice, keeping nil nil (stored as null) and empty empty.
func each[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// setString stores s in an engine enumeration (a string type).
func setString[S ~string](dst *S, s string) { *dst = S(s) }

func toSpecDoc(s engine.Spec) specDoc {
	return specDoc{Version: Version, Source: s.Source, Outputs: each(s.Outputs, toOutputDoc), CallbackURL: s.CallbackURL, Payload: s.Payload,
		Warnings: each(s.Warnings, toWarningDoc), Query: s.Query}
}

func (d specDoc) spec() engine.Spec {
	return engine.Spec{Source: d.Source, Outputs: each(d.Outputs, outputDoc.output), CallbackURL: d.CallbackURL, Payload: d.Payload,
		Warnings: each(d.Warnings, warningDoc.warning), Query: d.Query}
}

func toWarningDoc(w engine.Warning) warningDoc {
	return warningDoc{Message: w.Message, Details: w.Details, Tag: w.Tag}
}

func (d warningDoc) warning() engine.Warning {
	return engine.Warning{Message: d.Message, Details: d.Details, Tag: d.Tag}
}

func toOutputDoc(o engine.Output) outputDoc {
	return outputDoc{
		Kind: string(o.Kind), Time: o.Time, FrameNumber: o.FrameNumber, StartTime: o.StartTime, Interval: o.Interval,
		Width: o.Width, Height: o.Height, Resolution: o.Resolution, ResizeMode: string(o.ResizeMode),
		Format: string(o.Format), Quality: o.Quality, Sprite: o.Sprite, Columns: o.Columns, Rows: o.Rows,
		Video: toVideoSettingsDoc(o.Video), Accuracy: string(o.Accuracy), UserTag: o.UserTag,
		Times: o.Times, Sizes: each(o.Sizes, func(s engine.Size) sizeDoc { return sizeDoc{W: s.W, H: s.H} }), Manifest: o.Manifest,
		Destinations: each(o.Destinations, func(d storage.Destination) destinationDoc {
			return destinationDoc{URL: d.URL, Key: d.Key, Secret: d.Secret, Permissions: d.Permissions, StorageClass: d.StorageClass, CacheControl: d.CacheControl}
		}),
	}
}

func (d outputDoc) output() engine.Output {
	o := engine.Output{
		Time: d.Time, FrameNumber: d.FrameNumber, StartTime: d.StartTime, Interval: d.Interval,
		Width: d.Width, Height: d.Height, Resolution: d.Resolution, Quality: d.Quality,
		Sprite: d.Sprite, Columns: d.Columns, Rows: d.Rows, Video: d.Video.settings(), UserTag: d.UserTag,
		Times: d.Times, Sizes: each(d.Sizes, func(s sizeDoc) engine.Size { return engine.Size{W: s.W, H: s.H} }), Manifest: d.Manifest,
		Destinations: each(d.Destinations, func(d destinationDoc) storage.Destination {
			return storage.Destination{URL: d.URL, Key: d.Key, Secret: d.Secret, Permissions: d.Permissions, StorageClass: d.StorageClass, CacheControl: d.CacheControl}
		}),
	}
	setString(&o.Kind, d.Kind)
	setString(&o.ResizeMode, d.ResizeMode)
	setString(&o.Format, d.Format)
	setString(&o.Accuracy, d.Accuracy)
	return o
}

func toVideoSettingsDoc(v engine.VideoSettings) videoSettingsDoc {
	return videoSettingsDoc{
		Duration: v.Duration, FrameRate: toRateDoc(v.FrameRate), FrameRateLimit: toRateDoc(v.FrameRateLimit),
		KeyframeFrames: v.KeyframeFrames, KeyframeTime: v.KeyframeTime, Bitrate: v.Bitrate, CRF: v.CRF,
		VideoCodec: v.VideoCodec, AudioCodec: v.AudioCodec, AudioBitrate: v.AudioBitrate, AudioRate: v.AudioRate,
		AudioChannels: v.AudioChannels, AudioMute: v.AudioMute, PixelFormat: v.PixelFormat, Profile: v.Profile,
		Preset: v.Preset, Deinterlace: v.Deinterlace, FileExtension: v.FileExtension,
	}
}

func (d videoSettingsDoc) settings() engine.VideoSettings {
	return engine.VideoSettings{
		Duration: d.Duration, FrameRate: d.FrameRate.rate(), FrameRateLimit: d.FrameRateLimit.rate(),
		KeyframeFrames: d.KeyframeFrames, KeyframeTime: d.KeyframeTime, Bitrate: d.Bitrate, CRF: d.CRF,
		VideoCodec: d.VideoCodec, AudioCodec: d.AudioCodec, AudioBitrate: d.AudioBitrate, AudioRate: d.AudioRate,
		AudioChannels: d.AudioChannels, AudioMute: d.AudioMute, PixelFormat: d.PixelFormat, Profile: d.Profile,
		Preset: d.Preset, Deinterlace: d.Deinterlace, FileExtension: d.FileExtension,
	}
}

func toRateDoc(r engine.Rate) rateDoc { return rateDoc{Num: r.Num, Den: r.Den} }
func (d rateDoc) rate() engine.Rate   { return engine.Rate{Num: d.Num, Den: d.Den} }

func toSnapDoc(s engine.Snapshot) snapDoc {
	return snapDoc{
		Version: Version, State: string(s.State), Percent: s.Percent, Error: s.Error,
		Images: each(s.Images, toImageDoc), Videos: each(s.Videos, toVideoDoc),
		Warnings: each(s.Warnings, func(w engine.Warning) warningDoc {
			return warningDoc{Message: w.Message, Details: w.Details, Tag: w.Tag}
		}),
		Duration: s.Duration, SourceSize: s.SourceSize, Payload: s.Payload,
	}
}

func (d snapDoc) snapshot() engine.Snapshot {
	s := engine.Snapshot{
		Percent: d.Percent, Error: d.Error, Images: each(d.Images, imageDoc.image), Videos: each(d.Videos, videoDoc.video),
		Warnings: each(d.Warnings, func(w warningDoc) engine.Warning {
			return engine.Warning{Message: w.Message, Details: w.Details, Tag: w.Tag}
		}),
		Duration: d.Duration, SourceSize: d.SourceSize, Payload: d.Payload,
	}
	setString(&s.State, d.State)
	return s
}

func toImageDoc(im engine.Image) imageDoc {
	return imageDoc{
		Output: im.Output, N: im.N, Kind: string(im.Kind), Format: im.Format, UserTag: im.UserTag,
		Location: toLocationDoc(im.Location), Width: im.Width, Height: im.Height, Manifest: im.Manifest,
		Frames: each(im.Frames, func(f engine.Frame) frameDoc {
			return frameDoc{Requested: f.Requested, Actual: f.Actual, Keyframe: f.Keyframe, Strategy: string(f.Strategy), Took: f.Took}
		}),
	}
}

func (d imageDoc) image() engine.Image {
	im := engine.Image{
		Output: d.Output, N: d.N, Format: d.Format, UserTag: d.UserTag,
		Location: d.Location.location(), Width: d.Width, Height: d.Height, Manifest: d.Manifest,
		Frames: each(d.Frames, func(d frameDoc) engine.Frame {
			f := engine.Frame{Requested: d.Requested, Actual: d.Actual, Keyframe: d.Keyframe, Took: d.Took}
			setString(&f.Strategy, d.Strategy)
			return f
		}),
	}
	setString(&im.Kind, d.Kind)
	return im
}

func toLocationDoc(l storage.Location) locationDoc {
	return locationDoc{URL: l.URL, Type: l.Type, Scheme: l.Scheme, Host: l.Host, Port: l.Port, Bucket: l.Bucket, Key: l.Key}
}

func (d locationDoc) location() storage.Location {
	return storage.Location{URL: d.URL, Type: d.Type, Scheme: d.Scheme, Host: d.Host, Port: d.Port, Bucket: d.Bucket, Key: d.Key}
}

func toVideoDoc(v engine.Video) videoDoc {
	return videoDoc{
		Output: v.Output, N: v.N, Format: v.Format, UserTag: v.UserTag, Location: toLocationDoc(v.Location),
		Size: v.Size, Duration: v.Duration, Bitrate: v.Bitrate,
		Meta: videoMetaDoc{Width: v.Meta.Width, Height: v.Meta.Height, FrameRate: toRateDoc(v.Meta.FrameRate),
			VideoBitrate: v.Meta.VideoBitrate, DAR: v.Meta.DAR, SAR: v.Meta.SAR, VideoCodec: v.Meta.VideoCodec, AudioCodec: v.Meta.AudioCodec},
	}
}

func (d videoDoc) video() engine.Video {
	return engine.Video{
		Output: d.Output, N: d.N, Format: d.Format, UserTag: d.UserTag, Location: d.Location.location(),
		Size: d.Size, Duration: d.Duration, Bitrate: d.Bitrate,
		Meta: engine.VideoMeta{Width: d.Meta.Width, Height: d.Meta.Height, FrameRate: d.Meta.FrameRate.rate(),
			VideoBitrate: d.Meta.VideoBitrate, DAR: d.Meta.DAR, SAR: d.Meta.SAR, VideoCodec: d.Meta.VideoCodec, AudioCodec: d.Meta.AudioCodec},
	}
}
