"""What would run: one RunSpec per model × dataset × iteration, and what is already done."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import config
from common.datasets import dataset_names
from common.io import read_json
from common.spec import RunSpec
from common.splits import protocol_id

TERMINAL = ("done", "failed", "timeout", "killed", "interrupted")


@dataclass
class Planned:
    spec: RunSpec
    run_dir: Path
    state: str  # done | pending | failed | interrupted | stale | running | ...

    @property
    def todo(self) -> bool:
        return self.state != "done"


def expand(value: str | list[str], valid: list[str], what: str) -> list[str]:
    """'all', 'a,b' or a list -> names, each checked against `valid`."""
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip() for i in items if i.strip()]
    if items == ["all"]:
        return list(valid)
    bad = [i for i in items if i not in valid]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}; valid {what}s: {', '.join(valid)}")
    return items


def iterations(value: str | int | None, profile_name: str, n_splits: int) -> list[int]:
    """None -> the profile's count; N -> 0..N-1; '0,3,7' -> those."""
    if value is None or value == "":
        value = config.profile(profile_name)["iterations"]
    if isinstance(value, str) and "," in value:
        its = [int(v) for v in value.split(",")]
    else:
        its = list(range(int(value)))
    bad = [k for k in its if not 0 <= k < n_splits]
    if bad:
        raise ValueError(f"iterations {bad} out of range: the protocol has {n_splits} splits (0..{n_splits - 1})")
    return its


def run_state(spec: RunSpec, run_dir: Path) -> str:
    status_path = run_dir / "status.json"
    if not status_path.is_file():
        return "pending"
    try:
        status = read_json(status_path)
    except (OSError, ValueError):
        return "pending"
    if status.get("spec_hash") != spec.hash:
        return "stale"
    state = status.get("status", "pending")
    if state == "done" and not (run_dir / "predictions.csv").is_file():
        return "pending"
    return state


def plan(models: str | list[str], datasets: str | list[str], profile_name: str = "full",
         iters: str | int | None = None, overrides: dict[str, Any] | None = None,
         results: Path = Path("results"), data_root: str | None = None, tag: str | None = None) -> list[Planned]:
    out = []
    for model in expand(models, config.model_names_on_disk(), "model"):
        for dataset in expand(datasets, dataset_names(), "dataset"):
            cfg = config.resolve(model, dataset, profile_name, overrides)
            proto = protocol_id(cfg["protocol"])
            # Non-reference profiles and tagged variants get their own folder: never mixed into one table.
            if profile_name != "full":
                proto += f"-{profile_name}"
            if tag:
                proto += f"-{tag}"
            for k in iterations(iters, profile_name, cfg["protocol"]["n_splits"]):
                spec = RunSpec(model=model, dataset=dataset, iteration=k, profile=profile_name, protocol=proto,
                               config=cfg, overrides=overrides or {}, data_root=data_root)
                run_dir = spec.run_dir(results)
                out.append(Planned(spec, run_dir, run_state(spec, run_dir)))
    return out


def prepare(p: Planned) -> Path:
    """Make the run folder ready: earlier attempts (stale results, failures) are moved aside, never deleted."""
    if p.run_dir.exists() and any(p.run_dir.iterdir()):
        state = p.state if p.state != "pending" else "incomplete"
        aside = p.run_dir.parent / "superseded" / f"{p.run_dir.name}-{state}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p.run_dir), str(aside))
    p.run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = p.run_dir / "spec.json"
    p.spec.save(spec_path)
    return spec_path
