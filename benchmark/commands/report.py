"""``report``: one self-contained HTML page from table or run folders (:mod:`benchmark.html_report`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

NAME = "report"


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="one self-contained HTML page from table or run folders: table, agreement, images side by side, curves",
        description=(
            "Write one HTML file (images embedded, opens from disk without a server) from table folders or run "
            "folders: the sortable table with significance marks, the metric agreement, the same images explained "
            "by every method side by side (the first K and the K the methods disagree on most), the mean "
            "Insertion/Deletion curves, and each method's settings and problem images."
        ),
    )
    parser.add_argument("folders", nargs="+", metavar="DIR", help="table folders or run folders (made by table/test)")
    parser.add_argument(
        "--output", default="report.html", metavar="FILE.html", help="the page to write (default: report.html)"
    )
    parser.add_argument("--images", type=int, default=8, metavar="K", help="images per side-by-side grid (default: 8)")
    parser.add_argument(
        "--by",
        default="deletion",
        metavar="METRIC",
        help="the metric whose spread over the methods picks the images they disagree on most (default: deletion)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from benchmark.html_report import write_report

    path = write_report(args.folders, args.output, args.images, args.by)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
