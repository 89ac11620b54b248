package engine

import (
	"fmt"
	"math"
	"strconv"
)

// Geometry is how a frame of the source becomes an image of the output.
type Geometry struct {
	W, H           int  // size of the image written
	ScaleW, ScaleH int  // size the picture is scaled to
	X, Y           int  // where the scaled picture sits (pad) or is cut (crop)
	Crop           bool // true: cut W×H out of the scaled picture; false: pad it
}

// Fit computes the geometry for a source shown at srcW×srcH (after
// rotation and pixel aspect ratio) and the size an output asks for:
//   - Resolution: the short side, the other side proportional;
//   - Width and Height: exactly that box; scale fits the picture inside
//     and pads it, crop fills the box and cuts the centre;
//   - Width or Height alone: the other side proportional;
//   - nothing: the source's display size.
func Fit(srcW, srcH int, o Output) (Geometry, error) {
	if srcW <= 0 || srcH <= 0 {
		return Geometry{}, fmt.Errorf("source has no picture size")
	}
	prop := func(num, a, b int) int { // num * a / b, at least 1
		return max(1, int(math.Round(float64(num)*float64(a)/float64(b))))
	}
	var w, h int
	switch {
	case o.Resolution > 0:
		if srcW <= srcH {
			w, h = o.Resolution, prop(o.Resolution, srcH, srcW)
		} else {
			w, h = prop(o.Resolution, srcW, srcH), o.Resolution
		}
	case o.Width > 0 && o.Height > 0:
		w, h = o.Width, o.Height
	case o.Width > 0:
		w, h = o.Width, prop(o.Width, srcH, srcW)
	case o.Height > 0:
		w, h = prop(o.Height, srcW, srcH), o.Height
	default:
		w, h = srcW, srcH
	}
	g := Geometry{W: w, H: h, ScaleW: w, ScaleH: h}
	sx, sy := float64(w)/float64(srcW), float64(h)/float64(srcH)
	if math.Abs(sx-sy) < 1e-9 {
		return g, nil
	}
	// The box's aspect ratio differs from the picture's.
	if o.ResizeMode == ResizeCrop {
		s := math.Max(sx, sy)
		g.ScaleW = max(w, int(math.Round(float64(srcW)*s)))
		g.ScaleH = max(h, int(math.Round(float64(srcH)*s)))
		g.Crop = true
	} else {
		s := math.Min(sx, sy)
		g.ScaleW = min(w, max(1, int(math.Round(float64(srcW)*s))))
		g.ScaleH = min(h, max(1, int(math.Round(float64(srcH)*s))))
	}
	if g.ScaleW == w && g.ScaleH == h {
		g.Crop = false
		return g, nil
	}
	g.X = abs(g.ScaleW-w) / 2
	g.Y = abs(g.ScaleH-h) / 2
	return g, nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// tonemapChain turns HDR (PQ or HLG) pictures into SDR BT.709 so thumbnails
// are not washed out.
const tonemapChain = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"

// FilterChain builds the ffmpeg filters that turn a decoded (and already
// rotated, see ffmpeg.RotateFilter) frame into the output picture.
func FilterChain(g Geometry, f ImageFormat, hdr bool) string {
	chain := ""
	if hdr {
		chain = tonemapChain + ","
	}
	chain += fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1", g.ScaleW, g.ScaleH)
	switch {
	case g.Crop:
		chain += fmt.Sprintf(",crop=%d:%d:%d:%d:exact=1", g.W, g.H, g.X, g.Y)
	case g.ScaleW != g.W || g.ScaleH != g.H:
		// pad rounds sizes and offsets to the chroma subsampling: pad an
		// unsubsampled picture so odd sizes stay exact.
		chain += fmt.Sprintf(",format=yuv444p,pad=%d:%d:%d:%d:color=black", g.W, g.H, g.X, g.Y)
	}
	return chain + ",format=" + pixelFormat(f)
}

func pixelFormat(f ImageFormat) string {
	switch f {
	case JPEG:
		return "yuvj420p"
	case WebP:
		return "yuv420p"
	default:
		return "rgb24"
	}
}

// Default qualities where an output gives none.
const (
	defaultJPEGQuality = 85
	defaultWebPQuality = 80
)

// CodecArgs builds the encoder options for an image format and a quality of
// 1..100 (0 = the default).
func CodecArgs(f ImageFormat, quality int) []string {
	switch f {
	case JPEG:
		if quality <= 0 {
			quality = defaultJPEGQuality
		}
		// mjpeg's qscale runs from 2 (best) to 31 (worst).
		q := 2 + int(math.Round(float64(100-min(quality, 100))*29/99))
		return []string{"-c:v", "mjpeg", "-q:v", strconv.Itoa(q)}
	case WebP:
		if quality <= 0 {
			quality = defaultWebPQuality
		}
		return []string{"-c:v", "libwebp", "-lossless", "0", "-quality", strconv.Itoa(min(quality, 100))}
	default:
		return []string{"-c:v", "png"}
	}
}
