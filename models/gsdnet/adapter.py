"""GSDNet behind the suite's adapter contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.modelconfig import ModelConfig
from common.registry import register
from models.gsdnet.losses import gradual_distillation
from models.gsdnet.network import GSDNet

WEIGHTS = "vgg_msceleb_resnet50_ft_weight.pkl"


@dataclass(frozen=True)
class GSDNetConfig(ModelConfig):
    """cfg["model"] of GSDNet (models/gsdnet/config.yaml)."""

    feature_weight: float
    distill_weight: float
    temperature: float


class GSDNetTask(Task):
    def __init__(self, num_classes: int, config: GSDNetConfig) -> None:
        super().__init__()
        self.net = GSDNet(num_class=num_classes)
        # The deepest exit's feature head only ever serves as the (detached) teacher of exit 2's feature, so
        # no loss term reaches it: a fixed random projection. Upstream it was trained only through the exit-0
        # aliasing bug (see network.py); frozen here so the optimiser holds only what the loss trains.
        for p in self.net.resnet.fc_4.parameters():
            p.requires_grad_(False)
        self.feature_weight = config.feature_weight
        self.distill_weight = config.distill_weight
        self.temperature = config.temperature

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats, _, _ = self.net(images)
        ce = F.cross_entropy(logits[-1], targets)
        feat_term, kd_term = gradual_distillation(logits, feats, self.temperature)
        loss = ce + self.feature_weight * feat_term + self.distill_weight * kd_term
        return {"loss": loss, "logits": logits[-1], "ce": ce.detach(), "feature_distance": feat_term.detach(),
                "distillation": kd_term.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0][-1]  # the deepest exit, as the reference suite evaluates


@register("gsdnet")
class GSDNetAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> GSDNetTask:
        return GSDNetTask(num_classes, GSDNetConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """The converted VGGFace2/MS-Celeb ResNet-50 (`python -m models.gsdnet.convert`) -> the trunk.
        Upstream loads it with strict=False; here every trunk tensor must load (BatchNorm counters, which
        the Caffe conversion does not have, excepted), the identity classifier fc.* is reported as unused,
        and any other key is an error naming it."""
        path = Path(paths[WEIGHTS])
        try:
            state = load_state_file(path)
        except ValueError as e:
            raise ValueError(f"{e}\nFor GSDNet run once: python -m models.gsdnet.convert {path} {path}") from e
        report = load_into(task.net.trunk(), state, files=[path], allow_missing=("*.num_batches_tracked",),
                           allow_unexpected=("fc.*",), what="ResNet-50 trunk",
                           layout="VGGFace2 resnet50 names: conv1.weight, layer1.0.bn1.bias, ...")
        if report.unexpected:
            report.notes.append(f"not used (VGGFace2 identity classifier): {', '.join(report.unexpected)}")
        return report
