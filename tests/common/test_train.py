"""Pieces of the training loop that the end-to-end runs cannot pin down exactly."""
from __future__ import annotations

import pytest
import torch

from common.train import _step_with_warmup, build_optimizer, build_scheduler


def _sgd_steps(warmup: int, steps: int, scheduler: str = "none") -> list[float]:
    """Parameter movement per step of plain SGD (grad 1, lr 1): the lr actually used at each step."""
    w = torch.nn.Parameter(torch.zeros(()))
    tcfg = {"optimizer": "sgd", "lr": 1.0, "weight_decay": 0.0, "momentum": 0.0, "scheduler": scheduler,
            "t_max": 4, "step_size": 2, "gamma": 0.5}
    opt = build_optimizer([{"params": [w]}], tcfg)
    sched = build_scheduler(opt, tcfg)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    moved = []
    for step in range(steps):
        before = w.detach().item()
        w.grad = torch.ones(())
        _step_with_warmup(opt, scaler, step, warmup)
        moved.append(round(before - w.detach().item(), 6))
        if sched is not None:
            sched.step()
    return moved


def test_warmup_ramps_the_lr_linearly_then_hands_over() -> None:
    assert _sgd_steps(warmup=4, steps=6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert _sgd_steps(warmup=0, steps=3) == [1.0, 1.0, 1.0]


def test_warmup_scales_the_scheduled_lr_and_leaves_the_schedule_alone() -> None:
    # StepLR halves every 2 steps: 1, 1, .5, .5; warm-up over 2 steps scales only the first two.
    assert _sgd_steps(warmup=2, steps=4, scheduler="step") == [0.5, 1.0, 0.5, 0.5]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_uses_the_fused_kernel(name: str) -> None:
    opt = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(2))]}],
                          {"optimizer": name, "lr": 1e-3, "weight_decay": 0.0})
    assert opt.defaults["fused"] is True


def test_unknown_optimizer_names_the_choices() -> None:
    with pytest.raises(ValueError, match="valid: adamw, adam, sgd"):
        build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(2))]}],
                        {"optimizer": "lamb", "lr": 1e-3, "weight_decay": 0.0})
