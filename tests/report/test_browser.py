"""The HTML report in a real browser (headless Chromium) at 1400 px and at 375 px.

Every section must be there and visible, and nothing may overflow the page width: a
wide table scrolls inside its own box. Headless Chromium lays a window out at least
500 px wide, so the page is loaded into an iframe of the width under test (the same
way scripts/screenshot.sh renders it). .ci/run installs Debian's chromium when it is
missing, so under CI a missing browser fails instead of skipping.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from dynbench.report.render import build_report, write_report
from tests.report.test_render import STORE

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    BROWSER is None and not os.environ.get("CI"), reason="chromium is not installed"
)

# A page holding the report in an iframe of the width under test, and asking the browser,
# once it is laid out, what the test needs to know (written into the DOM as JSON).
HOST = """<!doctype html><html><body style="margin:0">
<iframe id="page" src="report.html" style="border:0;width:{width}px;height:3000px"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var doc = this.contentDocument, root = doc.documentElement;
  var sections = Array.from(doc.querySelectorAll("section")).map(function (s) {{
    var box = s.getBoundingClientRect();
    return {{id: s.id, visible: box.width > 0 && box.height > 0}};
  }});
  var wide = Array.from(doc.querySelectorAll("body *")).filter(function (e) {{
    return e.getBoundingClientRect().right > root.clientWidth + 1 && !e.closest("div.scroll");
  }}).map(function (e) {{ return e.tagName; }});
  var top = function (selector) {{
    var e = doc.querySelector(selector);
    return e ? e.getBoundingClientRect().top : null;
  }};
  var badge = doc.querySelector("table.data .badge"), box = badge && badge.getBoundingClientRect();
  var scales = Array.from(doc.querySelectorAll("figure svg")).map(function (svg) {{
    return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  }});
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({{scrollWidth: root.scrollWidth,
    clientWidth: root.clientWidth, sections: sections, overflowing: wide.slice(0, 5),
    conclusion: top("p.conclusion"), firstTable: top("table"),
    badge: box && {{text: badge.textContent, top: box.top, right: box.right,
                   colour: getComputedStyle(badge).backgroundColor}},
    svgScales: scales}});
  document.body.appendChild(out);
}});
</script></body></html>
"""


# the height of the first screen: a laptop's window, a phone's
FIRST_SCREEN = {1400: 800, 375: 812}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    write_report(build_report(STORE), out, "html")
    return out


def _chromium(*args: str) -> str:
    assert BROWSER, "chromium is not installed (apt-get install chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    flags.append("--allow-file-access-from-files")  # the host page reads its iframe
    result = subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120)
    return result.stdout


@pytest.mark.parametrize("width", [1400, 375])
def test_every_section_shows_and_nothing_overflows(page, width):
    host = page / f"host-{width}.html"
    host.write_text(HOST.format(width=width))
    dom = _chromium(f"--window-size={max(width, 500)},3000", "--dump-dom", host.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, "the page did not load or its script did not run"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert width - 20 <= probe["clientWidth"] <= width  # less a scrollbar, if one shows
    ids = [s["id"] for s in probe["sections"]]
    assert ids == ["claims", "plots", "latency", "reproduction", "sizes"]
    assert all(s["visible"] for s in probe["sections"])
    assert probe["scrollWidth"] <= probe["clientWidth"], probe["overflowing"]
    assert probe["overflowing"] == []
    # the first screen answers: the conclusion before any table, a verdict badge (colour
    # and text) within the first screen and inside the width
    assert probe["conclusion"] is not None and probe["conclusion"] < probe["firstTable"]
    badge = probe["badge"]
    assert badge["text"] and badge["colour"] not in ("rgba(0, 0, 0, 0)", "transparent")
    assert badge["top"] < FIRST_SCREEN[width] and badge["right"] <= probe["clientWidth"]
    # plot text: the smallest is 7 pt (9.3 px at full size); it must stay at least 9 px
    assert probe["svgScales"] and min(probe["svgScales"]) * 7 * 4 / 3 >= 9
    shot = page / f"screenshot-{width}.png"
    _chromium(f"--window-size={width},3000", f"--screenshot={shot}", host.as_uri())
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == width
