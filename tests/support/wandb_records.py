"""Read an offline W&B run back from its files (tests only).

Offline, W&B writes no ``wandb-summary.json``: everything is in ``run-<id>.wandb``, a record
log in LevelDB's log format (32 KiB blocks; each chunk has a 7-byte header: CRC32 (4), length
(2), type (1: full, 2: first, 3: middle, 4: last)), after a 7-byte file header ``:W&B`` +
magic + version. Each record is a ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """The ``Record`` messages of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B record log"
    position, parts = _HEADER, []
    while position + _HEADER <= len(data):
        left = _BLOCK - position % _BLOCK
        if left < _HEADER:  # the rest of a block too small for a header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + _HEADER])
        if kind == 0 and length == 0:
            position += left
            continue
        if position + _HEADER + length > len(data):  # still being written
            return
        chunk = data[position + _HEADER : position + _HEADER + length]
        position += _HEADER + length
        parts = [chunk] if kind in (_FULL, _FIRST) else [*parts, chunk]
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            yield record


def _set(target: dict, item) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    """What an offline run logged: run facts, config, summary, history rows, its folder."""

    folder: Path
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def media(self, relative: str) -> Path:
        return self.folder / "files" / relative


def _finished_records(log: Path, timeout: float) -> list:
    """The records once the run's ``exit`` record is on disk: W&B's service process writes
    the log asynchronously, so it can lag a moment behind ``run.finish()``."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(log))
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def read_offline_run(folder: Path, timeout: float = 60) -> OfflineRun:
    """Parse ``folder/run-*.wandb`` (an ``offline-run-*`` folder of a finished run)."""
    (log,) = folder.glob("run-*.wandb")
    run = OfflineRun(folder)
    for record in _finished_records(log, timeout):
        kind = record.WhichOneof("record_type")
        if kind == "run":  # later run records may repeat it with fields left empty
            run.name = record.run.display_name or run.name
            run.group = record.run.run_group or run.group
            run.job_type = record.run.job_type or run.job_type
            run.tags = list(record.run.tags) or run.tags
            for item in record.run.config.update:
                _set(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            run.history.append(row)
    return run
