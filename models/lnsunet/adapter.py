"""LNSU-Net behind the suite's adapter contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from common.adapter import Adapter, LoadReport, Task
from common.checkpoint import load_into, load_state_file
from common.modelconfig import ModelConfig
from common.registry import register
from models.lnsunet.losses import class_balance_weights, flip_consistency_loss, rebalanced_lsr_loss
from models.lnsunet.network import LNSUNet


# The authors' face pre-training checkpoint (their README calls it start_0.pth; their scripts load .pt).
WEIGHTS = "start_0.pt"


@dataclass(frozen=True)
class LNSUNetConfig(ModelConfig):
    """cfg["model"] of LNSU-Net (models/lnsunet/config.yaml): the loss weights and the Swin trunk's shape."""

    smoothing: float
    flip_weight: float
    drop_path_rate: float
    patch_size: int
    window_size: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]


class LNSUNetTask(Task):
    """Loss = re-balanced label smoothing + flip_weight x CAM flip consistency (upstream e=0.3, 0.1).

    `image_size`: the side of the (square) input, which sizes the Swin trunk's attention windows.
    """

    def __init__(self, num_classes: int, class_counts: Sequence[int], config: LNSUNetConfig, image_size: int) -> None:
        super().__init__()
        if len(class_counts) != num_classes:
            raise ValueError(f"class_counts has {len(class_counts)} entries for {num_classes} classes: {list(class_counts)}")
        self.net = LNSUNet(num_classes=num_classes, img_size=image_size, patch_size=config.patch_size,
                           window_size=config.window_size, embed_dim=config.embed_dim, depths=config.depths,
                           num_heads=config.num_heads, drop_path_rate=config.drop_path_rate)
        # A buffer, so the prior the run trained with is saved in its checkpoint.
        self.register_buffer("class_weights", class_balance_weights(class_counts))
        self.smoothing = config.smoothing
        self.flip_weight = config.flip_weight

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
        size = int(cfg["data"]["image_size"] or self.input_spec.size)
        return LNSUNetTask(num_classes, class_counts, LNSUNetConfig.from_cfg(cfg["model"]), size)

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """start_0.pt: the authors' face pre-training checkpoint; its 'state_dict_backbone' is the
        whole encoder (Swin trunk + the unused embedding head) and loads strict, as upstream."""
        path = Path(paths[WEIGHTS])
        state = load_state_file(path, key="state_dict_backbone")
        report = load_into(task.net.encoder, state, files=[path], what="Swin encoder",
                           layout="the authors' start_0.pt, the whole encoder under 'state_dict_backbone'")
        report.notes.append("encoder.norm and encoder.feature (pre-training embedding head) loaded but unused")
        return report
