"""Shared helpers of the training-loop tests."""
from __future__ import annotations

from typing import Callable

import pytest
import torch

from common.adapter import Task


class LinearTask(Task):
    """The smallest Task the loop can train: one linear layer on 4 features, 3 classes, cross-entropy."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.fc(images)
        return {"loss": torch.nn.functional.cross_entropy(logits, targets), "logits": logits}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(images)


@pytest.fixture
def linear_task() -> Callable[[], LinearTask]:
    """Builds a fresh LinearTask (its initial weights come from torch's global seed at the call)."""
    return LinearTask
