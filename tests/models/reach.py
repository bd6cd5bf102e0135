"""Which parameters of a network reach its output: one backward pass in eval mode."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def parameters_reaching_output(net: nn.Module, output: Callable[[nn.Module], torch.Tensor]) -> tuple[int, set[str]]:
    """(number of parameter values with a gradient, names of parameters without one) for `output(net).sum()`.

    Every parameter takes part (frozen ones too); requires_grad flags and grads are restored after."""
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    training = net.training
    try:
        net.requires_grad_(True)
        net.zero_grad()
        net.eval()
        output(net).sum().backward()
        used = sum(p.numel() for p in net.parameters() if p.grad is not None)
        return used, {n for n, p in net.named_parameters() if p.grad is None}
    finally:
        net.train(training)
        for n, p in net.named_parameters():
            p.requires_grad_(flags[n])
            p.grad = None
