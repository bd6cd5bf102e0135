"""POSTER++ behind the suite's adapter contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.backbones.pretrained import load_ir50_and_landmarks
from common.modelconfig import ModelConfig
from common.registry import register
from models.posterpp.network import PosterV2


@dataclass(frozen=True)
class PosterV2Config(ModelConfig):
    """cfg["model"] of POSTER++ (models/posterpp/config.yaml)."""

    allow_partial_backbone: bool


class PosterV2Task(Task):
    """Loss of the reference suite: plain cross-entropy."""

    def __init__(self, num_classes: int, config: PosterV2Config) -> None:
        super().__init__()
        self.net = PosterV2(num_classes)
        self.allow_partial_backbone = config.allow_partial_backbone

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(images)
        return {"loss": F.cross_entropy(logits, targets), "logits": logits}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


@register("posterpp")
class PosterV2Adapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> PosterV2Task:
        return PosterV2Task(num_classes, PosterV2Config.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """ir50.pth remapped to body1/body2/body3 (every backbone tensor must load unless
        model.allow_partial_backbone) and mobilefacenet_model_best.pth.tar (strict, frozen)."""
        assert isinstance(task, PosterV2Task)
        return load_ir50_and_landmarks(task.net.ir_back, task.net.face_landback, paths,
                                       allow_partial=task.allow_partial_backbone)
