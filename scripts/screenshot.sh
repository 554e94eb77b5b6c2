#!/usr/bin/env bash
# Render a report page to PNG with headless Chromium at a desktop and a phone width.
#   bash scripts/screenshot.sh [REPORT_HTML] [OUT_DIR]
# Defaults: reports/default/report.html, written beside it as screenshot-1400.png and
# screenshot-375.png. Headless Chromium lays a window out at least 500 px wide, so the page
# is shown in an iframe of each width. Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
page=$(realpath "${1:-reports/default/report.html}")
out=$(realpath "${2:-$(dirname "$page")}")
browser=$(command -v chromium || command -v chromium-browser) || {
    echo "chromium is not installed: apt-get install chromium" >&2
    exit 2
}
mkdir -p "$out"
host=$(mktemp -d)
trap 'rm -rf "$host"' EXIT
for width in 1400 375; do
    cat > "$host/host.html" <<HTML
<!doctype html><html><body style="margin:0">
<iframe src="file://$page" style="border:0;width:${width}px;height:6000px"></iframe>
</body></html>
HTML
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --allow-file-access-from-files --window-size="$width,6000" \
        --screenshot="$out/screenshot-$width.png" "file://$host/host.html" 2>/dev/null
    echo "wrote $out/screenshot-$width.png"
done
