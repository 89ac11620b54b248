#!/usr/bin/env bash
# make-sample.sh makes static/test_mini.mp4, the sample video thumbd embeds
# and serves at /static/test_mini.mp4 (the name of Qencode's sample in its
# docs), so that the first example works offline. It is committed; run this
# only to change it. Six seconds of ffmpeg's testsrc2 pattern (a moving
# picture with a clock) under a 40-row band that paints each frame's number
# in 8 black or white blocks (as internal/frametest reads them: tests check
# which frame a thumbnail shows), and a 440 Hz tone: H.264 + AAC in MP4,
# 640x360 at 25 fps, a keyframe every 2 s, moov first, bit-exact and
# single-threaded so that the same ffmpeg makes the same bytes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=static/test_mini.mp4
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "nullsrc=s=8x2:r=25:d=6,geq=lum='255*mod(floor(N/pow(2,X)),2)':cb=128:cr=128,scale=640:40:flags=neighbor,format=yuv420p,setsar=1" \
	-f lavfi -i "testsrc2=size=640x320:rate=25:duration=6,format=yuv420p,setsar=1" \
	-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=6" \
	-filter_complex "[0:v][1:v]vstack[v]" -map "[v]" -map 2:a \
	-c:v libx264 -preset slow -crf 28 -g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p -threads 1 \
	-c:a aac -b:a 64k -ac 1 \
	-map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
	-movflags +faststart \
	"$out"
ls -l "$out"
