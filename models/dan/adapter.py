"""DAN behind the suite's adapter contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.backbones.resnet18 import MSCELEB_FILE, MSCELEB_LAYOUT, read_msceleb
from common.checkpoint import load_into
from common.modelconfig import ModelConfig
from common.registry import register
from models.dan.losses import AffinityLoss, PartitionLoss
from models.dan.network import DAN

WEIGHTS = MSCELEB_FILE

# resnet18 child name -> index in DAN.features (the authors' Sequential of children[:-2]).
_TRUNK_INDEX = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


@dataclass(frozen=True)
class DANConfig(ModelConfig):
    """cfg["model"] of DAN (models/dan/config.yaml)."""

    num_heads: int
    affinity_weight: float
    partition_weight: float


class DANTask(Task):
    def __init__(self, num_classes: int, config: DANConfig) -> None:
        super().__init__()
        self.net = DAN(num_classes=num_classes, num_heads=config.num_heads)
        # Sized by the dataset's class count (the reference RAF-DB script built it with 8 classes for 7).
        self.affinity = AffinityLoss(num_classes)
        self.partition = PartitionLoss()
        self.affinity_weight = config.affinity_weight
        self.partition_weight = config.partition_weight

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feat, heads = self.net(images)
        ce = F.cross_entropy(logits, targets)
        af = self.affinity(feat, targets)
        pt = self.partition(heads)
        loss = ce + self.affinity_weight * af + self.partition_weight * pt
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "affinity": af.detach(), "partition": pt.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


def trunk_key(key: str) -> str | None:
    """resnet18 key (conv1.weight, layer2.0.bn1.bias, ...) -> DAN.features key; fc -> None (unused)."""
    head, _, rest = key.partition(".")
    return f"{_TRUNK_INDEX[head]}.{rest}" if head in _TRUNK_INDEX else None


@register("dan")
class DANAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> DANTask:
        return DANTask(num_classes, DANConfig.from_cfg(cfg["model"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """resnet18_msceleb.pth into the trunk: every trunk tensor must load; the face-recognition
        classifier (fc.*) is the only part of the file left unused."""
        path = Path(paths[WEIGHTS])
        report = load_into(task.net.features, read_msceleb(path), files=[path], rename=trunk_key,
                           allow_unexpected=("fc.*",), what="ResNet-18 trunk", layout=MSCELEB_LAYOUT)
        report.notes.append("fc.* (MS-Celeb identity classifier) not used")
        return report
