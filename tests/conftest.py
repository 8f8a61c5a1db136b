"""Session-wide test settings: Weights & Biases stays offline and writes only to a temporary
folder, whatever the machine's W&B configuration; plus the shared one-process reference run."""

from __future__ import annotations

import pytest
import torch

from tests.support.cli_runs import SEVEN_IMAGES_GRADCAM, CliRun, run_in_process, wandb_env


@pytest.fixture(scope="session", autouse=True)
def offline_wandb(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb-env")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
            patch.delenv(name, raising=False)
        for name, value in wandb_env(root).items():
            patch.setenv(name, value)
        yield root


@pytest.fixture(scope="session", autouse=True)
def uncompiled_cpu_default():
    """In-process runs default to channels_last on the CPU, not the product's compiled default:
    a compile costs 12-36 s per run, and this process makes ~150 runs. The compiled execution
    has its own tests (``tests/models/test_compiled.py``), and the runs made as fresh processes (DDP,
    resume, interrupts) keep the product's default."""
    from benchmark.devices import DEVICE_DEFAULTS

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DEVICE_DEFAULTS["cpu"], "execution", "channels_last")
        yield


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory) -> CliRun:
    """Grad-CAM on 7 images in this process with one thread (as each DDP process has), logged
    to offline W&B: the reference of the DDP test, and the run the W&B tests read back."""
    output = tmp_path_factory.mktemp("one-process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(output / "home"))
            run = run_in_process([*SEVEN_IMAGES_GRADCAM, "--logger", "wandb", "--output", str(output / "runs")])
    finally:
        torch.set_num_threads(threads)
    assert run.code == 0, run.err
    return run
