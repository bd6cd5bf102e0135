"""DAN behind the suite's adapter contract."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.registry import register
from models.dan.network import DAN, AffinityLoss, PartitionLoss

# torchvision resnet18 child name -> index in DAN.features (the authors' Sequential of children[:-2]).
_TRUNK_INDEX = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


class DANTask(Task):
    def __init__(self, num_classes: int, num_heads: int, affinity_weight: float, partition_weight: float) -> None:
        super().__init__()
        self.net = DAN(num_classes=num_classes, num_heads=num_heads)
        # Sized by the dataset's class count (the reference RAF-DB script built it with 8 classes for 7).
        self.affinity = AffinityLoss(num_classes)
        self.partition = PartitionLoss()
        self.affinity_weight = affinity_weight
        self.partition_weight = partition_weight

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
        m = cfg["model"]
        return DANTask(num_classes, int(m["num_heads"]), float(m["affinity_weight"]), float(m["partition_weight"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """resnet18_msceleb.pth: {'state_dict': torchvision resnet18 keys with a 1000-way fc}.
        Every trunk tensor must load; the face-recognition classifier (fc.*) is the only unused part."""
        path = paths["resnet18_msceleb.pth"]
        state = load_state_file(path, key="state_dict")
        report = load_into(task.net.features, state, files=[path], strict=False, rename=trunk_key,
                           what="ResNet-18 trunk")
        stray = [k for k in report.unexpected if not k.startswith("fc.")]
        if report.missing or stray:
            raise ValueError(f"{path} does not match the ResNet-18 trunk: missing {report.missing[:10]}, "
                             f"unexpected {stray[:10]} (expected torchvision resnet18 keys under 'state_dict')")
        report.notes.append("fc.* (MS-Celeb identity classifier) not used")
        return report
