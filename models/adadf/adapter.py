"""Ada-DF behind the adapter contract: two-branch ResNet-18, label-distribution target, epoch state."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.backbones.resnet18 import MSCELEB_FILE, MSCELEB_LAYOUT, read_msceleb, resnet18
from common.checkpoint import load_into
from common.modelconfig import ModelConfig
from common.registry import register
from models.adadf import losses
from models.adadf.network import AdaDFNet

WEIGHTS = MSCELEB_FILE


@dataclass(frozen=True)
class AdaDFConfig(ModelConfig):
    """cfg["model"] of Ada-DF (models/adadf/config.yaml)."""

    threshold: float
    beta: int
    alpha: float | None
    max_weight: float
    min_weight: float
    tops: float
    margin: float
    sharpen: bool
    temperature: float
    label_smoothing: float
    drop_rate: float
    freeze_stem: bool


class AdaDFTask(Task):
    """Loss = alpha_2 * CE(out1) + alpha_1 * KL(out2 || fused target) + rank regularisation.

    Epoch state lives in buffers so the checkpoint carries it: `class_distributions` (LD, [C,C]) and
    `epoch` (0-based, drives the warm-up). Branch-1 probabilities of the training samples are summed
    per class during the epoch (non-persistent buffers) and turned into LD in on_epoch_end.
    """

    def __init__(self, num_classes: int, config: AdaDFConfig) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.threshold, self.beta, self.alpha = config.threshold, config.beta, config.alpha
        self.min_weight, self.max_weight = config.min_weight, config.max_weight
        self.tops, self.margin = config.tops, config.margin
        self.sharpen, self.temperature = config.sharpen, config.temperature
        self.label_smoothing = config.label_smoothing
        self.freeze_stem = config.freeze_stem
        self.net = AdaDFNet(num_classes, drop_rate=config.drop_rate)
        if self.freeze_stem:
            self.net.feature.requires_grad_(False)
        self.register_buffer("class_distributions", losses.fallback_distributions(
            num_classes, self.threshold, self.sharpen, self.temperature))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self.register_buffer("prob_sum", torch.zeros(num_classes, num_classes), persistent=False)
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.long), persistent=False)

    def train(self, mode: bool = True) -> "AdaDFTask":
        super().train(mode)
        if self.freeze_stem:
            self.net.feature.eval()  # frozen weights keep their BatchNorm statistics too
        return self

    def alphas(self) -> tuple[float, float]:
        return losses.warmup_alphas(int(self.epoch) + 1, self.beta, self.alpha)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        out1, out2, attention = self.net(images)
        out1, out2, attention = out1.float(), out2.float(), attention.float()
        alpha_1, alpha_2 = self.alphas()
        loss_rr = losses.rank_regularization(attention, self.tops, self.margin)
        loss_ce = F.cross_entropy(out1, targets, label_smoothing=self.label_smoothing)
        weights = losses.fusion_weights(attention, self.min_weight, self.max_weight)
        target = losses.fused_target(out1, weights, self.class_distributions, targets)
        loss_kld = losses.kl_to_target(out2, target)
        if self.training:
            self._accumulate(out1.detach(), targets)
        return {"loss": alpha_2 * loss_ce + alpha_1 * loss_kld + loss_rr, "logits": out2,
                "loss_ce": loss_ce.detach(), "loss_kld": loss_kld.detach(), "loss_rr": loss_rr.detach()}

    @torch.no_grad()
    def _accumulate(self, out1: torch.Tensor, targets: torch.Tensor) -> None:
        # The reference suite builds LD from the training pass's branch-1 outputs of the epoch.
        self.prob_sum.index_add_(0, targets, F.softmax(out1, dim=1).to(self.prob_sum))
        self.counts += torch.bincount(targets, minlength=self.num_classes)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[1]

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch.fill_(epoch)
        self.prob_sum.zero_()
        self.counts.zero_()

    def on_epoch_end(self, epoch: int) -> None:
        if int(self.counts.sum()) == 0:
            return  # no training batch this epoch: nothing to learn LD from
        self.class_distributions.copy_(losses.class_distributions(
            self.prob_sum, self.counts, self.threshold, self.sharpen, self.temperature))


@register("adadf")
class AdaDFAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> Task:
        return AdaDFTask(num_classes, AdaDFConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """resnet18_msceleb.pth (`state_dict`, 1000-way fc) whole into a resnet18, then its stem+layer1
        into `feature` and its layer2-4 into both branches, as the authors do."""
        path = Path(paths[WEIGHTS])
        trunk = resnet18()
        report = load_into(trunk, read_msceleb(path), files=[path], what="resnet18 trunk", layout=MSCELEB_LAYOUT)
        task.net.copy_branches_from(trunk)
        report.notes.append("stem+layer1 -> feature; layer2-4 -> branch_1 and branch_2; the 1000-way fc is "
                            "not used (fresh branch classifiers and attention heads, as upstream)")
        return report
