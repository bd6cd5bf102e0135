"""POSTER behind the suite's adapter contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.adapter import Adapter, LoadReport, Task
from common.backbones.pretrained import load_ir50_and_landmarks
from common.errors import ConfigError
from common.modelconfig import ModelConfig
from common.registry import register
from models.poster.losses import ce_plus_smoothed_ce
from models.poster.network import DEPTHS, Poster


@dataclass(frozen=True)
class PosterConfig(ModelConfig):
    """cfg["model"] of POSTER (models/poster/config.yaml)."""

    variant: str
    drop_path_rate: float
    label_smoothing: float
    smoothing_weight: float
    allow_partial_backbone: bool

    def __post_init__(self) -> None:
        if self.variant not in DEPTHS:
            raise ConfigError(f"model.variant={self.variant!r}: POSTER variant {self.variant!r} unknown; "
                              f"valid: {', '.join(DEPTHS)}")


class PosterTask(Task):
    """Loss of the reference suite: CE + smoothing_weight x label-smoothing CE (0.2); both on the logits."""

    def __init__(self, num_classes: int, config: PosterConfig) -> None:
        super().__init__()
        self.net = Poster(num_classes, variant=config.variant, drop_path_rate=config.drop_path_rate)
        self.label_smoothing = config.label_smoothing
        self.smoothing_weight = config.smoothing_weight
        self.allow_partial_backbone = config.allow_partial_backbone

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feature = self.net(images)
        loss, ce, lsce = ce_plus_smoothed_ce(logits, targets, self.label_smoothing, self.smoothing_weight)
        return {"loss": loss, "logits": logits, "feature": feature.detach(), "ce": ce.detach(), "lsce": lsce.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


@register("poster")
class PosterAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> PosterTask:
        return PosterTask(num_classes, PosterConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """ir50.pth (`body.N` or `body1/2/3` keys; every backbone tensor must load unless
        model.allow_partial_backbone) and mobilefacenet_model_best.pth.tar (strict, frozen)."""
        assert isinstance(task, PosterTask)
        return load_ir50_and_landmarks(task.net.ir_back, task.net.face_landback, paths,
                                       allow_partial=task.allow_partial_backbone)
