"""DDAMFN behind the suite's adapter contract."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.registry import register
from models.ddamfn.network import MFN_HEAD, TRUNK_STAGES, DDAMNet, unused_parameter_names

WEIGHTS = "MFN_msceleb.pth"
_STAGE_INDEX = {name: str(i) for i, name in enumerate(TRUNK_STAGES)}


def attention_loss(heads: list[torch.Tensor], eps: float = sys.float_info.epsilon) -> torch.Tensor:
    """Pushes the heads apart: number of head pairs / (sum of their pairwise MSEs + eps); 0 for one head."""
    if len(heads) < 2:
        return heads[0].new_zeros(())
    total, pairs = heads[0].new_zeros(()), 0
    for i in range(len(heads) - 1):
        for j in range(i + 1, len(heads)):
            total = total + F.mse_loss(heads[i], heads[j])
            pairs += 1
    return pairs / (total + eps)


class DDAMFNTask(Task):
    def __init__(self, num_classes: int, num_heads: int, attention_weight: float) -> None:
        super().__init__()
        self.net = DDAMNet(num_class=num_classes, num_head=num_heads)
        self.attention_weight = attention_weight
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


def trunk_key(key: str) -> str | None:
    """MixedFeatureNet key (conv_34.CA.conv1.weight) -> DDAMNet.features key (4.CA.conv1.weight);
    the face-embedding head (conv_6_dw, linear, bn) -> None, reported as unused."""
    stage, _, rest = key.partition(".")
    return f"{_STAGE_INDEX[stage]}.{rest}" if stage in _STAGE_INDEX else None


@register("ddamfn")
class DDAMFNAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> DDAMFNTask:
        size = cfg["data"]["image_size"]
        if size not in (None, 112):
            raise ValueError(f"data.image_size={size!r}: DDAMFN only works at 112 (its heads use 7x7 kernels "
                             f"on the 7x7 feature map); set data.image_size=112 or null")
        m = cfg["model"]
        return DDAMFNTask(num_classes, int(m["num_heads"]), float(m["attention_weight"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """MFN_msceleb.pth converted by `python -m models.ddamfn.convert` (MixedFeatureNet keys) -> trunk.
        Every trunk tensor must load; the face-embedding head is the only part left unused."""
        path = Path(paths[WEIGHTS])
        try:
            state = load_state_file(path)
        except ValueError as e:
            raise ValueError(f"{e}\nFor DDAMFN run once: python -m models.ddamfn.convert {path} {path}") from e
        report = load_into(task.net.features, state, files=[path], strict=False, rename=trunk_key,
                           what="MixedFeatureNet trunk")
        # named as in the file (conv_5.model.0...), not by our Sequential index
        missing = [f"{TRUNK_STAGES[int(i)]}.{rest}" for i, _, rest in
                   (k.partition(".") for k in report.missing if not k.endswith("num_batches_tracked"))]
        stray = [k for k in report.unexpected if k.partition(".")[0] not in MFN_HEAD]
        if missing or stray:
            raise ValueError(f"{path} does not match the MixedFeatureNet trunk: missing {missing[:10]}, "
                             f"unexpected {stray[:10]} (expected the converted MFN_msceleb.pth)")
        report.notes.append("conv_6_dw/linear/bn (MS-Celeb embedding head) not used: DDAMFN cuts the trunk before them")
        return report
