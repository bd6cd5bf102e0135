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

# InputSpec lives with the rest of the model facts (torch-free); re-exported for the model code.
from common.meta import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelMeta, model_meta

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Adapter", "InputSpec", "LoadReport", "Task"]


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
    """Base class of a model's adapter; subclasses register with @common.registry.register.

    The model's facts (display name, input size/mean/std/interpolation, published weight files and
    their aliases) are data in the `meta:` section of its config.yaml (common/meta.py), read by the
    torch-free harness too; the properties below expose them, so an adapter only builds and loads.
    """

    name: ClassVar[str] = ""

    @property
    def meta(self) -> ModelMeta:
        return model_meta(self.name)

    @property
    def display_name(self) -> str:
        return self.meta.display_name

    @property
    def input_spec(self) -> InputSpec:
        return self.meta.input

    @property
    def pretrained_files(self) -> tuple[str, ...]:
        return self.meta.pretrained_files

    @property
    def pretrained_aliases(self) -> dict[str, tuple[str, ...]]:
        return self.meta.pretrained_aliases

    def build(self, num_classes: int, cfg: dict[str, Any], class_counts: list[int]) -> Task:
        """Build the task. `cfg` is the whole resolved config (model keys under cfg["model"]);
        `class_counts` are the per-class counts of the training split of this run."""
        raise NotImplementedError

    def load_pretrained(self, task: Task, paths: dict[str, Path]) -> LoadReport:
        """Load the authors' weight files (`paths`: file name in pretrained_files -> path)."""
        raise NotImplementedError(f"model {self.name!r} has no published weights to load")
