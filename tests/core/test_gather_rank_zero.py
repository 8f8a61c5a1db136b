"""--save-maps under DDP: the kept maps go to rank 0 only (every map on every rank would be
~10 GB per process on the full validation set), while the metric results stay on every rank."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        from benchmark.metrics import SaliencyScorer
        from benchmark.metrics.per_sample import PerSampleMetric
        from benchmark.metrics.results import gather_results

        class Column(PerSampleMetric):
            def update(self, ids, values):
                self._store(ids, values)

        scorer = SaliencyScorer(n_steps=2, blur_kernel=1, blur_sigma=0.0)
        ids = torch.tensor([rank * 2, rank * 2 + 1])
        images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(rank))
        maps = images.mean(1)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
        probs = net(images).softmax(-1)
        base, classes = probs.max(-1)
        scorer.update(net, lambda x, c: x.mean(1), ids, images, maps, classes, base.detach())
        label = Column()
        label.update(ids, torch.zeros(2))
        kept = {int(i): maps[k] for k, i in enumerate(ids)}
        results = gather_results(scorer, {"label": label}, [], kept, {}, keep_maps=1, save_maps=True, seed=0)
        torch.save(
            {"ids": results.sample_ids, "maps": sorted(results.maps), "metrics": results.metrics},
            os.path.join(folder, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_kept_maps_are_gathered_to_rank_zero_only(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    zero, one = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert zero["ids"] == one["ids"] == [0, 1, 2, 3]  # the results are everyone's
    assert zero["metrics"] == one["metrics"]
    assert zero["maps"] == [0, 1, 2, 3] and one["maps"] == []  # the maps only rank 0's
