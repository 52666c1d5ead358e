#!/usr/bin/env bash
# Regenerates internal/watch/media/demo.mp4, the demo room's video in
# `croupier dev` (docs/rooms.md): 60 s of a running clock and frame counter
# (readable in screenshots when comparing two players), a moving box and a
# beeping tone; H.264 main + AAC mono, a keyframe every second (fast
# seeks), faststart, bit-exact. Needs ffmpeg (Debian package ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "color=c=0x1d2430:size=480x270:rate=25:duration=60,drawbox=x='mod(t*80,480)':y=200:w=40:h=40:color=0xe0a030:t=fill,drawtext=fontfile=$font:text='%{pts\:hms}':fontsize=44:fontcolor=white:x=(w-tw)/2:y=70,drawtext=fontfile=$font:text='frame %{frame_num}':fontsize=22:fontcolor=0xa0a8b8:x=(w-tw)/2:y=140" \
	-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=60" \
	-c:v libx264 -profile:v main -preset medium -crf 36 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p \
	-c:a aac -b:a 16k -ac 1 -movflags +faststart \
	-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -threads 1 \
	internal/watch/media/demo.mp4
