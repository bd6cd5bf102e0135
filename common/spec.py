"""RunSpec: what one run is (model × dataset × iteration × resolved config), and its hash.

Torch-free: the harness builds specs, the run entry point reads them. The hash covers everything
that can change a result and nothing that cannot (device, threads, workers, paths), so a re-run
skips exactly the iterations whose result would be the same. Beyond the config that is the dataset's
fingerprint and the weight files' sha256 (or "scratch"), both resolved at plan time
(common/fingerprint.py); `pretrained` and `weights_dir` are left out, being paths or decided by
what the weights fingerprint already says.
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
# Paths, or choices whose effect the weights fingerprint records: not hashed.
PATH_KEYS = ("pretrained", "weights_dir")


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
    dataset_fingerprint: dict[str, Any] | None = None
    weights: dict[str, str] | str | None = None  # {file name: sha256} or "scratch"

    @property
    def hash(self) -> str:
        cfg = copy.deepcopy(self.config)
        for section, key in EXECUTION_KEYS:
            cfg.get(section, {}).pop(key, None)
        for key in PATH_KEYS:
            cfg.pop(key, None)
        payload = {"model": self.model, "dataset": self.dataset, "iteration": self.iteration,
                   "protocol": self.protocol, "config": cfg, "dataset_fingerprint": self.dataset_fingerprint,
                   "weights": self.weights}
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


def what_changed(old: dict[str, Any], new: RunSpec) -> str:
    """Why an earlier spec (spec.json as saved) and `new` hash differently, in words."""
    parts = []
    if old.get("dataset_fingerprint") != new.dataset_fingerprint:
        before, after = old.get("dataset_fingerprint") or {}, new.dataset_fingerprint or {}
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        parts.append(f"the dataset changed ({', '.join(keys)})")
    if old.get("weights") != new.weights:
        parts.append(f"the weight files changed ({_weights_text(old.get('weights'))} -> {_weights_text(new.weights)})")
    flat_old, flat_new = _flat(old.get("config") or {}), _flat(new.config)
    keys = [k for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)
            and tuple(k.split(".")) not in EXECUTION_KEYS and k not in PATH_KEYS]
    if keys:
        shown = ", ".join(f"{k}: {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in keys[:4])
        parts.append(f"the config changed ({shown}{', ...' if len(keys) > 4 else ''})")
    return "; ".join(parts) or "the spec changed"


def _weights_text(w: Any) -> str:
    if w is None:
        return "not recorded"
    if isinstance(w, str):
        return w
    return "+".join(f"{name} {sha[:8]}" for name, sha in w.items())


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
