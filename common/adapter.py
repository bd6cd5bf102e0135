"""The contract between a model folder and the rest of the suite.

A model folder registers one `Adapter` subclass. The adapter builds a `Task`: an
nn.Module whose forward returns the loss and the logits, so that every model-specific
loss term (and its learnable parameters, e.g. DAN's class centres) lives inside the
module the optimiser sees. The training loop in common/train.py knows nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What the network expects. Images are always RGB; config `data.image_size` overrides size."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"


@dataclass
class LoadReport:
    """What load_pretrained did; stored in the run's status and the result row."""

    files: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    loaded: int = 0
    expected: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Tensors not loaded because their shape differs: {"key" (file), "module_key", "expected", "file"}.
    shape_mismatch: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: "LoadReport", *notes: str) -> "LoadReport":
        """One report over the files of both (a model that loads several files), plus `notes`."""
        return LoadReport(files=self.files + other.files, sha256=self.sha256 + other.sha256,
                          loaded=self.loaded + other.loaded, expected=self.expected + other.expected,
                          missing=self.missing + other.missing, unexpected=self.unexpected + other.unexpected,
                          notes=self.notes + other.notes + list(notes),
                          shape_mismatch=self.shape_mismatch + other.shape_mismatch)

    def summary(self) -> str:
        names = "+".join(Path(f).name for f in self.files) or "none"
        return f"{names} ({self.loaded}/{self.expected})"


class Task(nn.Module):
    """A trainable model plus its losses.

    forward(images, targets) -> dict with at least "loss" (scalar) and "logits" [B, C].
    predict(images) -> logits [B, C] used for the test predictions (the model's prediction rule).
    """

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch (0-based)."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called after each training epoch, before validation. State a model keeps across
        epochs must be registered buffers so that it is saved with the checkpoint."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser; default: every trainable parameter, one group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]


class Adapter:
    """Base class of a model's adapter; subclasses register with @common.registry.register."""

    name: ClassVar[str] = ""
    input_spec: ClassVar[InputSpec] = InputSpec()
    # File names of the authors' published weights, looked up in the weights folder.
    pretrained_files: ClassVar[tuple[str, ...]] = ()
    # Other names the same file is published under (e.g. a README and a script that disagree).
    pretrained_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> Task:
        """Build the task. `cfg` is the whole resolved config (model keys under cfg["model"]);
        `class_counts` are the per-class counts of the training split of this run."""
        raise NotImplementedError

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """Load the authors' weight files (`paths`: file name in pretrained_files -> path)."""
        raise NotImplementedError(f"model {self.name!r} has no published weights to load")
