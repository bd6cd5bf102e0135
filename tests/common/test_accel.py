"""GPU efficiency options (common/accel.py) leave a CPU run exactly as it was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from common import accel
from common.adapter import Task
from common.train import fit

FAST = {"channels_last": True, "compile": True, "amp_dtype": "bfloat16"}


class _Conv(Task):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def forward(self, images, targets):
        logits = self.net(images)
        return {"loss": torch.nn.functional.cross_entropy(logits, targets), "logits": logits}

    def predict(self, images):
        return self.net(images)


def _losses(run_dir: Path, options: dict) -> list[float]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g), torch.arange(32))
    cfg = {"train": {"amp": True, "optimizer": "adamw", "lr": 0.01, "weight_decay": 0.0, "scheduler": "none",
                     "scheduler_step": "epoch", "grad_accum": 1, "grad_clip": None, "patience": None, "epochs": 2,
                     "warmup_steps": 0, "batch_size": 8, **options}}
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="amp=true is ignored on CPU"):
        fit(_Conv(), loader, DataLoader(data, batch_size=32), cfg, run_dir, torch.device("cpu"), log=lambda _: None)
    return [json.loads(r)["train_loss"] for r in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_cpu_training_is_identical_with_the_gpu_options_on(tmp_path: Path) -> None:
    plain = _losses(tmp_path / "plain", {"channels_last": False, "compile": False, "amp_dtype": "float16"})
    assert _losses(tmp_path / "fast", FAST) == plain


def test_on_cpu_the_helpers_hand_back_what_they_got() -> None:
    task, x = _Conv(), torch.randn(2, 3, 8, 8)
    assert accel.prepare(task, torch.device("cpu"), FAST) is task
    assert task.net[0].weight.is_contiguous()  # not turned channels-last
    assert accel.layout(x, torch.device("cpu"), FAST) is x
    assert not accel.needs_scaler(False, {"amp_dtype": "float16"})
    assert accel.needs_scaler(True, {"amp_dtype": "float16"}) and not accel.needs_scaler(True, {"amp_dtype": "bfloat16"})


def test_an_unknown_amp_dtype_names_the_choices() -> None:
    with pytest.raises(ValueError, match="valid: float16, bfloat16"):
        accel.amp_dtype({"amp_dtype": "fp8"})


def test_evaluation_computes_in_the_dtype_training_used() -> None:
    """Validation and test predictions run under the autocast dtype of the training steps (a
    bfloat16 run used to be evaluated under float16), and under none where AMP is off or not CUDA."""
    from common.train import predict

    seen: list[torch.dtype] = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def predict(self, x: torch.Tensor) -> torch.Tensor:
            out = self.fc(x)
            seen.append(out.dtype)
            return out

    cfg = {"amp": True, "amp_dtype": "bfloat16"}
    assert accel.autocast_dtype(cfg, torch.device("cuda")) == torch.bfloat16
    assert accel.autocast_dtype({**cfg, "amp_dtype": "float16"}, torch.device("cuda")) == torch.float16
    assert accel.autocast_dtype(cfg, torch.device("cpu")) is None
    assert accel.autocast_dtype({**cfg, "amp": False}, torch.device("cuda")) is None
    # The CPU's autocast takes both dtypes, so the dtype's way into predict is checked for real here;
    # float16 is not the CPU's default, so it shows the dtype is passed, not assumed.
    loader = [(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), torch.arange(5))]
    for dtype in (torch.float16, torch.bfloat16, None):
        predict(Probe(), loader, torch.device("cpu"), dtype)
    assert seen == [torch.float16, torch.bfloat16, torch.float32]
