#!/usr/bin/env bash
# Starts lit-studio in a real window under Xvfb, lets it render, saves a screenshot and checks that the
# window drew something (many distinct colours, not a blank framebuffer). Exit 77 = skipped.
set -euo pipefail
bin=$1
png=$2
command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not installed"; exit 77; }
rm -f "$png"
xvfb-run -a -s "-screen 0 1280x800x24" "$bin" --screenshot "$png" --frames 10
[ -s "$png" ] || { echo "FAIL: no screenshot written"; exit 1; }
colours=$(identify -format '%k' "$png")
size=$(identify -format '%wx%h' "$png")
echo "screenshot $png: $size, $colours distinct colours"
[ "$colours" -gt 5 ] || { echo "FAIL: the window looks blank"; exit 1; }
