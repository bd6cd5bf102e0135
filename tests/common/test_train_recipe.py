"""Gradient accumulation and clipping as the reference scripts do them (GSDNet and POSTER++ on ExpW):
the loss divided by N, an optimiser step every N batches on the accumulated gradient, clipped to a
total norm first."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from common import config
from common.adapter import Task
from common.train import fit


def _reference_steps(task: Task, batches, accum: int, clip: float, lr: float) -> None:
    """The reference loop, written out: loss / accum, backward, every accum batches clip and step."""
    opt = torch.optim.SGD(task.parameters(), lr=lr)
    opt.zero_grad()
    for i, (x, y, _) in enumerate(batches):
        (task(x, y)["loss"] / accum).backward()
        if (i + 1) % accum == 0:
            torch.nn.utils.clip_grad_norm_(task.parameters(), max_norm=clip)
            opt.step()
            opt.zero_grad()


@pytest.mark.parametrize("accum,clip", [(4, 0.05), (4, None), (1, 0.05)])
def test_accumulation_and_clipping_match_the_reference_loop(tmp_path: Path, accum: int, clip: float | None,
                                                             linear_task):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    data = TensorDataset(x, y, torch.arange(64))
    torch.manual_seed(0)
    ours = linear_task()
    reference, unclipped = copy.deepcopy(ours), copy.deepcopy(ours)
    cfg = {"train": {"amp": False, "optimizer": "sgd", "lr": 1.0, "weight_decay": 0.0, "momentum": 0.0,
                     "scheduler": "none", "scheduler_step": "epoch", "grad_accum": accum, "grad_clip": clip,
                     "patience": None, "epochs": 1, "warmup_steps": 0, "batch_size": 8}}
    loader = DataLoader(data, batch_size=8)  # 8 batches: 2 accumulated steps, no remainder
    fit(ours, loader, DataLoader(data, batch_size=64), cfg, tmp_path, torch.device("cpu"), log=lambda _: None)
    _reference_steps(reference, loader, accum, clip if clip else float("inf"), lr=1.0)
    for a, b in zip(ours.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)
    if clip:  # the clip was active: without it the steps differ
        _reference_steps(unclipped, loader, accum, float("inf"), lr=1.0)
        assert not torch.allclose(ours.fc.weight, unclipped.fc.weight)


def test_exp_w_recipes_of_gsdnet_and_posterpp():
    """Only the ExpW scripts of GSDNet (accumulation 4, AMP, clip 5) and POSTER++ (clip 5) differ."""
    for dataset in ("expw", "rafdb", "sfew"):
        gsd = config.resolve("gsdnet", dataset)["train"]
        ppp = config.resolve("posterpp", dataset)["train"]
        on_expw = dataset == "expw"
        assert (gsd["grad_accum"], gsd["amp"], gsd["grad_clip"]) == ((4, True, 5.0) if on_expw else (1, False, None))
        assert (ppp["grad_accum"], ppp["amp"], ppp["grad_clip"]) == ((4, True, 5.0) if on_expw else (4, True, None))
