package vtt_test

import (
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/thumbd/thumbd/vtt"
)

func ExampleWriter() {
	w := vtt.NewWriter(os.Stdout)
	for i, start := range []time.Duration{0, 10 * time.Second} {
		c := vtt.Cue{
			Start: start,
			End:   start + 10*time.Second,
			Text:  fmt.Sprintf("sprite_0001.jpg#xywh=%d,0,160,90", i*160),
		}
		if err := w.Write(c); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// WEBVTT
	//
	// 00:00:00.000 --> 00:00:10.000
	// sprite_0001.jpg#xywh=0,0,160,90
	//
	// 00:00:10.000 --> 00:00:20.000
	// sprite_0001.jpg#xywh=160,0,160,90
}

func ExampleTimestamp() {
	fmt.Println(vtt.Timestamp(59*time.Second + 999_500*time.Microsecond))
	fmt.Println(vtt.Timestamp(100 * time.Hour))
	// Output:
	// 00:01:00.000
	// 100:00:00.000
}

func ExampleParse() {
	cues, err := vtt.Parse(strings.NewReader("WEBVTT\n\n00:05.000 --> 01:00:00.000\nthumb_0001.jpg\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cues[0].Start, cues[0].End, cues[0].Text)
	// Output: 5s 1h0m0s thumb_0001.jpg
}
