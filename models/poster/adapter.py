"""POSTER behind the suite's adapter contract."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.backbones.pretrained import load_ir50_and_landmarks
from common.registry import register
from models.poster.network import Poster


class PosterTask(Task):
    """Loss of the reference suite: CE + smoothing_weight x label-smoothing CE (0.2); both on the logits."""

    def __init__(self, num_classes: int, mcfg: dict[str, Any]) -> None:
        super().__init__()
        self.net = Poster(num_classes, variant=str(mcfg["variant"]), drop_path_rate=float(mcfg["drop_path_rate"]))
        self.label_smoothing = float(mcfg["label_smoothing"])
        self.smoothing_weight = float(mcfg["smoothing_weight"])
        self.allow_partial_backbone = bool(mcfg["allow_partial_backbone"])

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feature = self.net(images)
        ce = F.cross_entropy(logits, targets)
        # (1 - e) * NLL + e * mean over classes of -log p: the suite's LabelSmoothingCrossEntropy.
        lsce = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        loss = ce + self.smoothing_weight * lsce
        return {"loss": loss, "logits": logits, "feature": feature.detach(), "ce": ce.detach(), "lsce": lsce.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


@register("poster")
class PosterAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> PosterTask:
        return PosterTask(num_classes, cfg["model"])

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """ir50.pth (`body.N` or `body1/2/3` keys; every backbone tensor must load unless
        model.allow_partial_backbone) and mobilefacenet_model_best.pth.tar (strict, frozen)."""
        assert isinstance(task, PosterTask)
        return load_ir50_and_landmarks(task.net.ir_back, task.net.face_landback, paths,
                                       allow_partial=task.allow_partial_backbone)
