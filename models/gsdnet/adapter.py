"""GSDNet behind the suite's adapter contract."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.registry import register
from models.gsdnet.network import GSDNet

WEIGHTS = "vgg_msceleb_resnet50_ft_weight.pkl"


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student against the teacher's softened distribution, both at `temperature`,
    averaged over the batch (the authors' `CrossEntropy`, T=3, no T^2 factor)."""
    target = F.softmax(teacher / temperature, dim=1)
    return -(F.log_softmax(student / temperature, dim=1) * target).sum(1).mean()


def gradual_distillation(logits: list[torch.Tensor], feats: list[torch.Tensor], temperature: float
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each exit k < 3 learns from exit k+1 (detached): (sum_k ||f_k - f_k+1||_2 over the whole batch,
    sum_k soft_CE(out_k, out_k+1))."""
    feat_term = logits[0].new_zeros(())
    kd_term = logits[0].new_zeros(())
    for k in range(len(logits) - 1):
        feat_term = feat_term + torch.dist(feats[k], feats[k + 1].detach())
        kd_term = kd_term + soft_cross_entropy(logits[k], logits[k + 1].detach(), temperature)
    return feat_term, kd_term


class GSDNetTask(Task):
    def __init__(self, num_classes: int, feature_weight: float, distill_weight: float, temperature: float) -> None:
        super().__init__()
        self.net = GSDNet(num_class=num_classes)
        # The deepest exit's feature head only ever serves as the (detached) teacher of exit 2's feature, so
        # no loss term reaches it: a fixed random projection. Upstream it was trained only through the exit-0
        # aliasing bug (see network.py); frozen here so the optimiser holds only what the loss trains.
        for p in self.net.resnet.fc_4.parameters():
            p.requires_grad_(False)
        self.feature_weight = feature_weight
        self.distill_weight = distill_weight
        self.temperature = temperature

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
        m = cfg["model"]
        return GSDNetTask(num_classes, float(m["feature_weight"]), float(m["distill_weight"]), float(m["temperature"]))

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
        report = load_into(task.net.trunk(), state, files=[path], strict=False, what="ResNet-50 trunk")
        missing = [k for k in report.missing if not k.endswith("num_batches_tracked")]
        stray = [k for k in report.unexpected if not k.startswith("fc.")]
        if missing or stray:
            raise ValueError(f"{path} does not match the ResNet-50 trunk: missing {missing[:10]}, unexpected "
                             f"{stray[:10]} (expected VGGFace2 resnet50 names: conv1.weight, layer1.0.bn1.bias, ...)")
        if report.unexpected:
            report.notes.append(f"not used (VGGFace2 identity classifier): {', '.join(report.unexpected)}")
        return report
