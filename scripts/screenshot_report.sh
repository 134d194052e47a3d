#!/usr/bin/env bash
# Screenshot the top of a run's report (the latent explorer) with headless Chromium.
#
#   bash scripts/screenshot_report.sh RUN OUT.png [WIDTHxHEIGHT]   (window size, default 1100x900)
#
# RUN is a run folder holding report.html (`betavae report RUN` writes one); OUT.png is written.
# The browser is Debian's /usr/bin/chromium (or $CHROMIUM); nothing is downloaded.
# The explorer decodes its digit in the page's JavaScript, so the page gets a virtual-time
# budget ($BUDGET_MS, default 5000) before the picture is taken.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 RUN OUT.png [WIDTHxHEIGHT]" >&2
    exit 2
fi
run=$1
out=$2
size=${3:-1100x900}
budget=${BUDGET_MS:-5000}
browser=${CHROMIUM:-/usr/bin/chromium}

report="$run/report.html"
if [ ! -f "$report" ]; then
    echo "no report at $report (write one with: betavae report $run)" >&2
    exit 1
fi
if [ ! -x "$browser" ]; then
    echo "no Chromium at $browser (Debian: apt-get install chromium; or set CHROMIUM)" >&2
    exit 1
fi
case $size in
    *x*) width=${size%x*}; height=${size#*x} ;;
    *) echo "size must be WIDTHxHEIGHT, e.g. 1100x900" >&2; exit 2 ;;
esac

report_abs=$(cd "$(dirname "$report")" && pwd)/report.html
mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out_abs"

# A throw-away profile, so that no state is shared with another Chromium.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --no-first-run --no-default-browser-check \
    --window-size="$width,$height" --virtual-time-budget="$budget" \
    --screenshot="$out_abs" "file://$report_abs" >/dev/null 2>"$profile/chromium.log" || {
    cat "$profile/chromium.log" >&2
    exit 1
}

if [ ! -s "$out_abs" ]; then
    cat "$profile/chromium.log" >&2
    echo "Chromium wrote no screenshot" >&2
    exit 1
fi
echo "$out_abs"
