"""Running the command line for tests: in this process, or as a fresh process (DDP) that a
hang cannot take down with it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: A small exact comparison: Grad-CAM (deterministic, unlike float32 LOTS across batch
#: compositions) on 7 built-in photos, one image per batch so that a sample's computation does
#: not depend on which others share its batch. The execution is named: the reference runs in
#: this process (where the CPU default is channels_last, see conftest) and the DDP runs as fresh
#: processes.
SEVEN_IMAGES_GRADCAM = [
    "test",
    "--method",
    "gradcam",
    "--limit",
    "7",
    "--batch-size",
    "1",
    "--metrics.n_steps",
    "6",
    "--save-maps",
    "--overlay-images",
    "3",
    "--log-images",
    "3",
    "--execution",
    "channels_last",
]


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def run_dir(self) -> Path:
        lines = [line for line in self.out.splitlines() if line.startswith("run folder: ")]
        assert len(lines) == 1, self.out + self.err
        return Path(lines[0].removeprefix("run folder: "))


def run_in_process(args: list[str]) -> CliRun:
    from benchmark.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    return CliRun(code, out.getvalue(), err.getvalue())


def isolated_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this worktree first on the path, W&B offline with
    every folder it writes (and HOME) under ``root``, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE")}
    env.update(wandb_env(root))
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        HOME=str(root / "home"),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def wandb_env(root: Path) -> dict[str, str]:
    """W&B offline (never the network) with its folders under ``root``."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root / "wandb"),
        "WANDB_CACHE_DIR": str(root / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(root / "wandb-config"),
        "WANDB_DATA_DIR": str(root / "wandb-data"),
        "WANDB_ARTIFACT_DIR": str(root / "wandb-artifacts"),
        "MPLCONFIGDIR": str(root / "matplotlib"),
    }


#: ``python -m torch.distributed.run`` (torchrun) starting two local processes.
TORCHRUN_TWO = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def run_subprocess(args: list[str], env: dict[str, str], timeout: float, launcher: list[str] = ()) -> CliRun:
    """``python [LAUNCHER] -m benchmark ARGS`` in a new session; on timeout the whole process
    group (Lightning's DDP children too) is killed with SIGKILL, since Lightning catches SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, *launcher, "-m", "benchmark", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{' '.join(args)} did not finish in {timeout} s (killed)\n{err[-3000:]}")
    finally:
        try:  # a child left behind by a failed rank 0
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return CliRun(process.returncode, out, err)
