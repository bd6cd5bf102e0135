"""LNSU-Net behind the suite's adapter contract."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.registry import register
from models.lnsunet.losses import class_balance_weights, flip_consistency_loss, rebalanced_lsr_loss
from models.lnsunet.network import LNSUNet


class LNSUNetTask(Task):
    """Loss = re-balanced label smoothing + flip_weight x CAM flip consistency (upstream e=0.3, 0.1).

    `net(x)` returns (logits, CAMs [B, C, h, w]) and has `num_classes` (models.lnsunet.network.LNSUNet).
    """

    def __init__(self, net: nn.Module, class_counts: Sequence[int], smoothing: float, flip_weight: float) -> None:
        super().__init__()
        self.net = net
        if len(class_counts) != net.num_classes:
            raise ValueError(f"class_counts has {len(class_counts)} entries for {net.num_classes} classes: {list(class_counts)}")
        # A buffer, so the prior the run trained with is saved in its checkpoint.
        self.register_buffer("class_weights", class_balance_weights(class_counts))
        self.smoothing = smoothing
        self.flip_weight = flip_weight

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        # One pass over the batch and its mirror image (upstream: two passes; same maths, the
        # per-sample drop-path draws are independent either way).
        logits_both, hm_both = self.net(torch.cat([images, images.flip(-1)]))
        n = images.shape[0]
        logits, hm, hm_of_flipped = logits_both[:n], hm_both[:n], hm_both[n:]
        lsr = rebalanced_lsr_loss(logits, targets, self.class_weights, self.smoothing)
        flip = flip_consistency_loss(hm, hm_of_flipped, self.class_weights)
        loss = lsr + self.flip_weight * flip
        return {"loss": loss, "logits": logits, "lsr": lsr.detach(), "flip": flip.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


@register("lnsunet")
class LNSUNetAdapter(Adapter):
    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> LNSUNetTask:
        m = cfg["model"]
        size = int(cfg["data"]["image_size"] or self.input_spec.size)
        net = LNSUNet(num_classes=num_classes, img_size=size, patch_size=int(m["patch_size"]),
                      window_size=int(m["window_size"]), embed_dim=int(m["embed_dim"]),
                      depths=tuple(m["depths"]), num_heads=tuple(m["num_heads"]),
                      drop_path_rate=float(m["drop_path_rate"]))
        return LNSUNetTask(net, class_counts, float(m["smoothing"]), float(m["flip_weight"]))

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """start_0.pt: the authors' face pre-training checkpoint; its 'state_dict_backbone' is the
        whole encoder (Swin trunk + the unused embedding head) and loads strict, as upstream."""
        path = paths["start_0.pt"]
        state = load_state_file(path, key="state_dict_backbone")
        report = load_into(task.net.encoder, state, files=[path], strict=True, what="Swin encoder")
        report.notes.append("encoder.norm and encoder.feature (pre-training embedding head) loaded but unused")
        return report
