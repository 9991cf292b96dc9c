#!/usr/bin/env bash
# Renders a report page to a PNG with headless Chromium, to look at the
# charts without a browser:
#   bash scripts/report-screenshot.sh REPORT.html OUT.png
# SCREENSHOT_HEIGHT (default 3000 px) sets the height of the page shot.
# Installs nothing: without chromium it says how to get it and exits 1.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 REPORT.html OUT.png" >&2
    exit 2
fi
html=$1
png=$2
if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium is not installed; install it with:" >&2
    echo "  apt-get install -y chromium" >&2
    exit 1
fi
if [ ! -f "$html" ]; then
    echo "$html: no such file" >&2
    exit 1
fi
abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
case "$png" in
    /*) out=$png ;;
    *) out=$(pwd)/$png ;;
esac
rm -f "$out"
# Chromium's own chatter (GPU, dbus, fontconfig) goes to a log; shown on failure.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$out" --window-size=1200,"${SCREENSHOT_HEIGHT:-3000}" "file://$abs" >"$log" 2>&1; then
    cat "$log" >&2
    echo "chromium failed on $abs" >&2
    exit 1
fi
if [ ! -s "$out" ]; then
    cat "$log" >&2
    echo "chromium wrote no screenshot to $out" >&2
    exit 1
fi
echo "$out: $(stat -c %s "$out") bytes"
