// Package frametest reads the frame number that thumbd's test clips carry
// in their picture, so that tests check which frame an image really shows
// without trusting what thumbd reports.
//
// testdata/clip.mp4 (and the clips tests make the same way) paint the top
// 40 of their 360 rows with 8 blocks across the width: block b is white when
// bit b of the frame number is 1, black otherwise. Longer clips (the
// benchmark's) paint more blocks, one per bit: Band.Bits.
package frametest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// Decode decodes a png, jpg or webp image and returns it with its format
// name.
func Decode(b []byte) (image.Image, string, error) {
	return image.Decode(bytes.NewReader(b))
}

// Band is how the source's top band of height bandH (of srcH rows) maps
// into a picture drawn at rect.
type Band struct {
	Rect  image.Rectangle // where the source picture lies in the image
	SrcH  int             // source height in rows
	BandH int             // band height in source rows
	Bits  int             // blocks across the width; 0 means 8
}

// ClipBand is the band of testdata/clip.mp4 drawn at rect.
func ClipBand(rect image.Rectangle) Band { return Band{Rect: rect, SrcH: 360, BandH: 40} }

// FrameNumber reads the frame number from img.
func (b Band) FrameNumber(img image.Image) (int, error) {
	bits := b.Bits
	if bits <= 0 {
		bits = 8
	}
	w := b.Rect.Dx()
	bandRows := float64(b.BandH) * float64(b.Rect.Dy()) / float64(b.SrcH)
	y := b.Rect.Min.Y + int(bandRows/2)
	n := 0
	for bit := range bits {
		x := b.Rect.Min.X + int((float64(bit)+0.5)*float64(w)/float64(bits))
		if !img.Bounds().Intersect(image.Rect(x, y, x+1, y+1)).Eq(image.Rect(x, y, x+1, y+1)) {
			return 0, fmt.Errorf("sample point %d,%d outside the image %v", x, y, img.Bounds())
		}
		r, g, bl, _ := img.At(x, y).RGBA()
		lum := (299*r + 587*g + 114*bl) / 1000 >> 8
		switch {
		case lum > 170:
			n |= 1 << bit
		case lum < 85:
		default:
			return 0, fmt.Errorf("bit %d at %d,%d is neither black nor white (luma %d)", bit, x, y, lum)
		}
	}
	return n, nil
}

// BandFilter is the ffmpeg filter graph fragment that paints frame numbers
// the way Band reads them: it makes a w×h band from a counter source of
// the given frame rate and duration, to be stacked above a picture with
// vstack. Each block is white when its bit of the frame's sequence number
// (counted from 0) is 1.
func BandFilter(w, h, bits int, rate string, dur float64) string {
	return fmt.Sprintf("nullsrc=s=%dx2:r=%s:d=%g,geq=lum='255*mod(floor(N/pow(2,X)),2)':cb=128:cr=128,scale=%d:%d:flags=neighbor,format=yuv420p",
		bits, rate, dur, w, h)
}
