"""Parity with the authors' networks, without their code in this repository.

A fixture (tests/fixtures/parity/<model>.json) records, from the authors' class at a known
commit: every state-dict key with its shape and dtype, and the eval-mode logits for a seeded
input after the state dict was filled by `fill_state_dict` below. The test fills our network's
state dict the same way from the *authors'* key list, loads it strict, and compares logits.
Fixtures are made once with tests/fixtures/parity/make_fixture.py against a checkout of the
upstream repository (see that script); the upstream code itself is never committed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


def _key_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


def fill_state_dict(keys: dict[str, list[Any]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic, well-conditioned values for every key: {name: [shape, dtype_str]}.

    Each tensor depends only on (seed, key), so key order does not matter. BatchNorm running
    variances are positive; integer counters get a constant; weights are small so deep
    networks neither explode nor vanish in eval mode.
    """
    out: dict[str, torch.Tensor] = {}
    for name, (shape, dtype) in keys.items():
        g = torch.Generator().manual_seed(_key_seed(seed, name))
        dt = getattr(torch, dtype.replace("torch.", ""))
        if not dt.is_floating_point:
            out[name] = torch.full(shape, 1, dtype=dt)
            continue
        if name.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif name.endswith("running_mean"):
            t = torch.randn(shape, generator=g) * 0.1
        else:
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            scale = (1.0 / max(fan_in, 1)) ** 0.5 if len(shape) > 1 else 0.1
            t = torch.randn(shape, generator=g) * scale
            if len(shape) == 1 and name.endswith("weight"):
                t = t + 1.0  # norm-layer gains around 1
        out[name] = t.to(dt)
    return out


def key_table(state_dict: dict[str, torch.Tensor]) -> dict[str, list[Any]]:
    return {k: [list(v.shape), str(v.dtype)] for k, v in state_dict.items()}


def seeded_input(shape: list[int], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed + 12345))


def fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
