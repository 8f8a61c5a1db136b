"""``models.allocator``: the fast executions keep freed memory in the process (no page fault
for each fresh activation), ``eager`` keeps the platform's allocator; results.json says which.
Each case runs in a fresh process: the setting belongs to the whole process and stays."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from benchmark.models.allocator import DEFAULT, KEPT
from tests.support.cli_runs import REPO

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Allocates, fills and frees a 64 MiB tensor 5 times; prints the page faults of those rounds.
_FAULTS = r"""
import json, resource, sys, torch
from benchmark.models.allocator import allocator_in_force, keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # the first rounds may fault either way (the heap grows, small blocks settle)
    torch.empty(16 * 2**20).fill_(1.0)
before = faults()
for _ in range(5):
    torch.empty(16 * 2**20).fill_(1.0)
print(json.dumps({"faults": faults() - before, "allocator": allocator_in_force()}))
"""


def _child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (mallopt)")
def test_keeping_freed_memory_ends_the_page_faults_of_fresh_tensors():
    pages = 5 * 64 * 2**20 // 4096  # 5 rounds of 64 MiB in 4 KiB pages: 81,920
    default = _child(_FAULTS, "default")
    kept = _child(_FAULTS, "keep")
    assert default["allocator"] == DEFAULT and kept["allocator"] == KEPT
    # glibc maps a block this large afresh each time (above its 32 MiB mmap threshold cap): a
    # fault per page; kept, the freed block is the next one (at most one round's faults allowed)
    assert default["faults"] >= 0.9 * pages, default
    assert kept["faults"] <= 0.2 * pages, kept


_RUN = r"""
import json, sys
from benchmark import evaluate
run = evaluate(method="random", limit=1, batch_size=1, metrics={"n_steps": 2}, overlay_images=0,
               execution=sys.argv[1], logger="none")
print(json.dumps({"allocator": run.results["allocator"], "execution": run.results["execution"]}))
"""


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (mallopt)")
@pytest.mark.parametrize(("execution", "allocator"), [("eager", DEFAULT), ("channels_last", KEPT)])
def test_results_json_records_the_allocator_of_the_execution(execution, allocator):
    assert _child(_RUN, execution) == {"allocator": allocator, "execution": execution}
