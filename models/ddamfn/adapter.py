"""DDAMFN behind the suite's adapter contract."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.modelconfig import ModelConfig
from common.registry import register
from models.ddamfn.losses import attention_loss
from models.ddamfn.network import MFN_HEAD, TRUNK_STAGES, DDAMNet, unused_parameter_names

WEIGHTS = "MFN_msceleb.pth"


@dataclass(frozen=True)
class DDAMFNConfig(ModelConfig):
    """cfg["model"] of DDAMFN (models/ddamfn/config.yaml)."""

    num_heads: int
    attention_weight: float


class DDAMFNTask(Task):
    def __init__(self, num_classes: int, config: DDAMFNConfig) -> None:
        super().__init__()
        self.net = DDAMNet(num_class=num_classes, num_head=config.num_heads)
        self.attention_weight = config.attention_weight
        # Never called upstream (no gradient ever reaches them); frozen so the optimiser sees only
        # what the forward uses. Their keys stay, so the authors' state dicts load strictly.
        unused = set(unused_parameter_names(self.net))
        for name, p in self.net.named_parameters():
            if name in unused:
                p.requires_grad_(False)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, _, heads = self.net(images)
        ce = F.cross_entropy(logits, targets)
        at = attention_loss(heads)
        loss = ce + self.attention_weight * at
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "attention": at.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


def named_trunk(net: DDAMNet) -> nn.Module:
    """DDAMNet.features under MixedFeatureNet's stage names (features.4 as conv_34, ...): the same
    modules, so a file in MixedFeatureNet keys loads by name and what does not fit is named as in the file."""
    return nn.Sequential(OrderedDict(zip(TRUNK_STAGES, net.features, strict=True)))


@register("ddamfn")
class DDAMFNAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> DDAMFNTask:
        size = cfg["data"]["image_size"]
        if size not in (None, 112):
            raise ValueError(f"data.image_size={size!r}: DDAMFN only works at 112 (its heads use 7x7 kernels "
                             f"on the 7x7 feature map); set data.image_size=112 or null")
        return DDAMFNTask(num_classes, DDAMFNConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """MFN_msceleb.pth converted by `python -m models.ddamfn.convert` (MixedFeatureNet keys) -> trunk.
        Every trunk tensor must load; the face-embedding head is the only part left unused."""
        path = Path(paths[WEIGHTS])
        try:
            state = load_state_file(path)
        except ValueError as e:
            raise ValueError(f"{e}\nFor DDAMFN run once: python -m models.ddamfn.convert {path} {path}") from e
        # BatchNorm counters may be absent (a file saved before PyTorch 0.4.1); the face-embedding head is unused.
        report = load_into(named_trunk(task.net), state, files=[path], allow_missing=("*.num_batches_tracked",),
                           allow_unexpected=[f"{h}.*" for h in MFN_HEAD], what="MixedFeatureNet trunk",
                           layout="the converted MFN_msceleb.pth (MixedFeatureNet keys conv1.*, ..., conv_6_sep.*)")
        report.notes.append("conv_6_dw/linear/bn (MS-Celeb embedding head) not used: DDAMFN cuts the trunk before them")
        return report
