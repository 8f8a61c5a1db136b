"""The eager reference measured in a fresh process (``python -m perf.eager_process``), so that it
runs with the platform's allocator: the parent's side, which starts it and reads its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from perf.cases import CaseResult
from perf.limit import ModelLimit


def in_eager_process(what: str, **options) -> dict:
    """Run ``python -m perf.eager_process WHAT --OPTION VALUE ...`` and return its JSON (the
    child's stderr passes through, so its progress lines show)."""
    argv = [
        sys.executable,
        "-m",
        "perf.eager_process",
        what,
        *[item for name, value in options.items() for item in (f"--{name.replace('_', '-')}", str(value))],
    ]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def eager_limit(**options) -> ModelLimit:
    payload = in_eager_process("limit", **options)
    return ModelLimit(
        forward_ms={int(k): v for k, v in payload["forward_ms"].items()},
        forward_backward_ms={int(k): v for k, v in payload["forward_backward_ms"].items()},
    )


def eager_case(what: str, **options) -> CaseResult:
    return CaseResult(**in_eager_process(what, **options))
