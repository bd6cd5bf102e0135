"""MFER adapter: Msc label-smoothing losses + the DSF stand-in; prediction = sum of the three head logits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.errors import ConfigError
from common.modelconfig import ModelConfig
from common.registry import register
from models.mfer.losses import DSF_CHOICES, DSFStandIn
from models.mfer.network import CONVNEXT_BASE_DIMS, MFERNet
from models.mfer.weights import WEIGHTS, load_convnext_weights


@dataclass(frozen=True)
class MFERConfig(ModelConfig):
    """cfg["model"] of MFER (models/mfer/config.yaml)."""

    drop_path_rate: float
    label_smoothing: float
    dsf: str
    dsf_weight: float
    dsf_smoothing: float

    def __post_init__(self) -> None:
        if self.dsf not in DSF_CHOICES:
            raise ConfigError(f"model.dsf={self.dsf!r} is not valid; choose one of {', '.join(DSF_CHOICES)}")


class MFERTask(Task):
    """loss = sum over the 3 Msc heads of LS-CE(head, y) + dsf_weight * DSF stand-in(feature, y)."""

    def __init__(self, num_classes: int, config: MFERConfig) -> None:
        super().__init__()
        self.net = MFERNet(num_classes, drop_path_rate=config.drop_path_rate)
        self.label_smoothing = config.label_smoothing
        self.dsf_weight = config.dsf_weight
        # A submodule of the task, so the optimiser sees its learnable class centres.
        self.dsf = None if config.dsf == "none" else DSFStandIn(num_classes, CONVNEXT_BASE_DIMS[-1], config.dsf,
                                                                config.dsf_smoothing)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        heads, feat = self.net(images)
        msc = sum(F.cross_entropy(h, targets, label_smoothing=self.label_smoothing) for h in heads)
        out = {"loss_msc": msc, "logits": torch.stack(heads).sum(0)}
        loss = msc
        if self.dsf is not None:
            terms = self.dsf(feat, targets)
            out.update({f"loss_{k}": v for k, v in terms.items()})
            loss = loss + self.dsf_weight * terms["dsf"]
        out["loss"] = loss
        return out

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.predict(images)


@register("mfer")
class MFERAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> Task:
        return MFERTask(num_classes, MFERConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        return load_convnext_weights(task.net, Path(paths[WEIGHTS]))
