"""RunSpec: what one run is (model × dataset × iteration × resolved config), and its hash.

Torch-free: the harness builds specs, the run entry point reads them. The hash covers everything
that can change a result and nothing that cannot (device, threads, workers, paths), so a re-run
skips exactly the iterations whose result would be the same.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.io import atomic_write_json, read_json

# Keys that decide how a run executes, not what it computes.
EXECUTION_KEYS = (("train", "device"), ("train", "threads"), ("data", "num_workers"), ("train", "keep_checkpoint"))


@dataclass
class RunSpec:
    model: str
    dataset: str
    iteration: int
    profile: str
    protocol: str
    config: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None

    @property
    def hash(self) -> str:
        cfg = copy.deepcopy(self.config)
        for section, key in EXECUTION_KEYS:
            cfg.get(section, {}).pop(key, None)
        payload = {"model": self.model, "dataset": self.dataset, "iteration": self.iteration,
                   "protocol": self.protocol, "config": cfg}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def run_dir(self, results: Path) -> Path:
        return Path(results) / "runs" / self.model / self.dataset / self.protocol / f"iter-{self.iteration}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "spec_hash": self.hash}

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "RunSpec":
        data = read_json(path)
        data.pop("spec_hash", None)
        return cls(**data)
