"""``report``: the page of a small 3-method table parses, has a row per method and a column per
metric, every embedded image decodes, the side-by-side grids hold the requested images in the
same order for every method (the disagreement grid the images of largest spread, recomputed
here from per_sample.csv), and it opens in headless Chromium with a screenshot that is not blank
and no request leaving the page (a local proxy records every request; a page with an external
image is caught by the same check)."""

from __future__ import annotations

import base64
import csv
import http.server
import io
import math
import os
import shutil
import socketserver
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.markdown_table import metric_header

METHODS = ["random", "gradcam", "layercam"]
#: Domains of Chromium's own background services (time, sign-in, updates).
GOOGLE_SERVICES = ("google.com", "googleapis.com", "gstatic.com", "gvt1.com")
ARGS = [
    "--limit",
    "4",
    "--batch-size",
    "2",
    "--metrics.n_steps",
    "4",
    "--execution",
    "channels_last",
    "--logger",
    "none",
    "--overlay-images",
    "4",
    "--metrics.bootstrap",
    "300",
    "--quiet",
    "--metrics.extra",
    "random_logit,randomization,road_morf",
    "--metrics.randomization_steps",
    "2",
    "--metrics.road_percentages",
    "25,75",
]


class Page(HTMLParser):
    """The parts of the report the tests look at: tables (rows of cell texts), images, grids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.image_alts: list[str] = []
        self.grids: dict[str, list[tuple[str, str]]] = {}
        self.links: list[str] = []
        self._cell: list[str] | None = None
        self._grid: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"id": attrs.get("id", ""), "rows": []})
            self._grid = attrs.get("data-grid")
            if self._grid:
                self.grids[self._grid] = []
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
            if self._grid and "data-method" in attrs:
                self.grids[self._grid].append((attrs["data-method"], attrs["data-sample"]))
        elif tag == "img":
            self.images.append(attrs["src"])
            self.image_alts.append(attrs.get("alt", ""))
        for name in ("src", "href"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._grid = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["table", "--methods", ",".join(METHODS), *ARGS, "--output", str(root)]) == 0
    return next(root.glob("table_*"))


@pytest.fixture(scope="module")
def report(table_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "report.html"
    assert main(["report", str(table_dir), "--output", str(path), "--images", "2", "--by", "deletion"]) == 0
    page = Page()
    page.feed(path.read_text())
    return path, page


@pytest.mark.slow
def test_the_table_has_a_row_per_method_and_a_column_per_metric(report, table_dir):
    import json

    path, page = report
    assert "Do the metrics agree?" in path.read_text()
    tau = [t for t in page.tables if t["rows"] and t["rows"][0][:2] == ["", "Avg Drop ↓"]]
    assert len(tau) == 1 and len(tau[0]["rows"]) == 1 + 8  # a row per metric
    (results,) = [t for t in page.tables if t["id"].startswith("results-")]
    header, *rows = results["rows"]
    keys = list(json.loads((table_dir / "gradcam" / "results.json").read_text())["metrics"])
    assert header == ["method", "images", *(metric_header(k) for k in keys), "ms/map ↓"]
    assert [row[0] for row in rows] == METHODS
    assert "Random Logit ↓" in header and "Model Randomization ↓" in header
    assert rows[0][2 + keys.index("random_logit")] == "n/a"  # Random-CAM's maps ignore the class
    gradcam = json.loads((table_dir / "gradcam" / "results.json").read_text())
    row = rows[1]
    for key, cell in zip(keys, row[2:]):
        assert cell.startswith(f"{gradcam['metrics'][key]:.2f}"), (key, cell)


@pytest.mark.slow
def test_the_mean_curves_of_insertion_deletion_and_road_are_plotted(report):
    _, page = report
    assert [alt for alt in page.image_alts if alt.endswith(" curves")] == [
        "insertion curves",
        "deletion curves",
        "road_morf curves",
    ]


@pytest.mark.slow
def test_every_embedded_image_decodes_and_nothing_is_linked(report):
    from PIL import Image

    _, page = report
    assert len(page.images) >= 1 + 2 * 2 * (1 + len(METHODS))  # agreement, curves, two grids of 2 rows
    for src in page.images:
        assert src.startswith("data:image/"), src[:40]
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        picture.load()
        assert picture.size[0] > 10 and picture.size[1] > 10
    assert page.links == []


@pytest.mark.slow
def test_the_grids_hold_the_requested_images_in_the_same_order_for_every_method(report, table_dir):
    _, page = report
    assert set(page.grids) == {"first", "disagree"}
    per_method = {}
    for method, sample in page.grids["first"]:
        per_method.setdefault(method, []).append(int(sample))
    assert list(per_method) == METHODS and all(ids == [0, 1] for ids in per_method.values())
    # the disagreement grid: the 2 images of largest deletion spread over the methods
    values = {
        m: {
            int(r["sample_id"]): float(r["deletion"]) for r in csv.DictReader((table_dir / m / "per_sample.csv").open())
        }
        for m in METHODS
    }
    spread = {i: max(values[m][i] for m in METHODS) - min(values[m][i] for m in METHODS) for i in values["gradcam"]}
    expected = sorted(spread, key=lambda i: (-spread[i], i))[:2]
    per_method = {}
    for method, sample in page.grids["disagree"]:
        per_method.setdefault(method, []).append(int(sample))
    assert all(ids == expected for ids in per_method.values()) and list(per_method) == METHODS


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def _open_in_chromium(page: Path, screenshot: Path, profile: Path) -> set[str]:
    """Open ``page`` headless through a local proxy; the hosts of every request it saw."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def _record(self):
            seen.append(self.path.split("/")[2] if "://" in self.path else self.path.split(":")[0])
            self.send_response(404)
            self.end_headers()

        do_GET = do_POST = do_HEAD = do_CONNECT = _record

        def log_message(self, *args):
            pass

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Recorder) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            done = subprocess.run(
                [
                    _chromium(),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1400,2400",
                    f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
                    "--proxy-bypass-list=<-loopback>",
                    "--disable-background-networking",
                    "--no-first-run",
                    f"--user-data-dir={profile}",
                    f"--screenshot={screenshot}",
                    page.resolve().as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            proxy.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    return set(seen)


@pytest.mark.slow
def test_it_opens_in_headless_chromium_not_blank_and_offline(report, tmp_path):
    import numpy as np
    from PIL import Image

    path, _ = report
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    external = tmp_path / "external.html"
    external.write_text('<!DOCTYPE html><html><body><img src="http://example.com/a.png"></body></html>')
    # Chromium calls its own Google services whatever it shows (seen: clients2/accounts/www.google.com);
    # those are the browser's, not the page's: the hosts of a blank page, and Google's service domains
    browser_own = _open_in_chromium(blank, tmp_path / "blank.png", tmp_path / "profile-blank")
    caught = _open_in_chromium(external, tmp_path / "external.png", tmp_path / "profile-external")

    def page_requests(hosts: set[str]) -> set[str]:
        return {h for h in hosts - browser_own if not h.endswith(GOOGLE_SERVICES)}

    assert page_requests(caught) == {"example.com"}  # the check sees a page's request
    hosts = _open_in_chromium(path, tmp_path / "report.png", tmp_path / "profile-report")
    assert page_requests(hosts) == set()
    shot = np.asarray(Image.open(tmp_path / "report.png").convert("L"), dtype=float)
    assert shot.std() > 20 and (shot < 200).mean() > 0.05  # text, tables and pictures, not a blank page
    assert not math.isnan(shot.mean())
