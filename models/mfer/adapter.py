"""MFER adapter: Msc label-smoothing losses + the DSF stand-in; prediction = sum of the three head logits."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.registry import register
from models.mfer.losses import DSF_CHOICES, DSFStandIn
from models.mfer.network import CONVNEXT_BASE_DIMS, MFERNet
from models.mfer.weights import load_convnext_weights


class MFERTask(Task):
    """loss = sum over the 3 Msc heads of LS-CE(head, y) + dsf_weight * DSF stand-in(feature, y)."""

    def __init__(self, num_classes: int, model_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.net = MFERNet(num_classes, drop_path_rate=float(model_cfg["drop_path_rate"]))
        self.label_smoothing = float(model_cfg["label_smoothing"])
        mode = model_cfg["dsf"]
        if mode not in DSF_CHOICES:
            raise ValueError(f"model.dsf={mode!r} is not valid; choose one of {', '.join(DSF_CHOICES)}")
        self.dsf_weight = float(model_cfg["dsf_weight"])
        # A submodule of the task, so the optimiser sees its learnable class centres.
        self.dsf = None if mode == "none" else DSFStandIn(num_classes, CONVNEXT_BASE_DIMS[-1], mode,
                                                          float(model_cfg["dsf_smoothing"]))

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
        return MFERTask(num_classes, cfg["model"])

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        if len(paths) != 1:
            raise ValueError(f"MFER loads one ConvNeXt-B file, got {sorted(paths)}; expected {self.pretrained_files[0]}")
        return load_convnext_weights(task.net, next(iter(paths.values())))
