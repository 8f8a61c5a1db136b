"""The ILSVRC localisation ground truth, ``LOC_val_solution.csv``.

Each row is ``ImageId,PredictionString`` where the prediction string repeats
``wnid x1 y1 x2 y2`` once per annotated box. The image label is the first wnid.
"""

from __future__ import annotations

import csv
from pathlib import Path

from benchmark.core.errors import BenchmarkError

GROUND_TRUTH_NAME = "LOC_val_solution.csv"
# The Kaggle download keeps the CSV four folders above ILSVRC/Data/CLS-LOC/val.
SEARCH_PARENTS = 4

Box = tuple[int, int, int, int]


def read_loc_solution(path: str | Path, problems: list[str] | None = None) -> dict[str, tuple[str, list[Box]]]:
    """Parse ``LOC_val_solution.csv`` into ``{image_id: (first_wnid, [(x1, y1, x2, y2), ...])}``.

    ``image_id`` is the file stem (``ILSVRC2012_val_00000001``). A file that is not this CSV
    (unreadable, not text, wrong header) raises :class:`BenchmarkError`; a malformed line too,
    unless ``problems`` is given: then the line is skipped and described there.
    """
    path = Path(path)
    result: dict[str, tuple[str, list[Box]]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
                raise _malformed(path, 1, "header is not ImageId,PredictionString")
            for line_no, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                try:
                    image_id, entry = _parse_row(row)
                except ValueError as problem:
                    if problems is None:
                        raise _malformed(path, line_no, str(problem)) from None
                    problems.append(f"{path.name} line {line_no}: {problem}; the line is skipped")
                    continue
                result[image_id] = entry
    except UnicodeDecodeError:
        raise _malformed(path, 1, "not a text file") from None
    except OSError as exc:
        raise BenchmarkError(
            f"ground truth {path}: cannot be read ({exc.strerror or exc}); pass a readable {GROUND_TRUTH_NAME}"
        ) from None
    return result


def _parse_row(row: list[str]) -> tuple[str, tuple[str, list[Box]]]:
    """``(image_id, (first wnid, boxes))`` of one CSV row; ``ValueError(problem)`` if malformed."""
    if len(row) < 2:
        raise ValueError("expected two columns")
    image_id, tokens = row[0].strip(), row[1].split()
    if not tokens or len(tokens) % 5:
        raise ValueError("PredictionString is not groups of 'wnid x1 y1 x2 y2'")
    try:
        boxes = [
            (int(tokens[i + 1]), int(tokens[i + 2]), int(tokens[i + 3]), int(tokens[i + 4]))
            for i in range(0, len(tokens), 5)
        ]
    except ValueError:
        raise ValueError("box coordinates are not integers") from None
    return image_id, (tokens[0], boxes)


def check_ground_truth(path: str | Path) -> Path:
    """The absolute path of a ground-truth file the user named; :class:`BenchmarkError` if it is missing."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise BenchmarkError(f"--ground-truth {path}: file does not exist; pass the path of {GROUND_TRUTH_NAME}")
    if not resolved.is_file():
        raise BenchmarkError(f"--ground-truth {path}: is a folder, not a file; pass the path of {GROUND_TRUTH_NAME}")
    return resolved.absolute()


def find_ground_truth(folder: Path) -> Path | None:
    """``LOC_val_solution.csv`` in ``folder`` or up to ``SEARCH_PARENTS`` parents, else ``None``."""
    for candidate_dir in [folder, *folder.parents][: SEARCH_PARENTS + 1]:
        candidate = candidate_dir / GROUND_TRUTH_NAME
        if candidate.is_file():
            return candidate
    return None


def _malformed(path: Path, line_no: int, problem: str) -> BenchmarkError:
    return BenchmarkError(
        f"ground truth {path}: line {line_no}: {problem}; pass the {GROUND_TRUTH_NAME} from the ImageNet download"
    )
