"""What would run: one RunSpec per model × dataset × iteration, and what is already done."""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import config
from common.datasets import dataset_names
from common.errors import ConfigError, MissingWeightsError
from common.io import atomic_write_json, read_json
from common.runlock import LOCK_NAME, RunLock, RunLocked, holder_text, is_held, read_holder
from common.fingerprint import dataset_fingerprint, model_meta, resolve_weights, weights_fingerprint
from common.spec import RunSpec, what_changed
from common.status import LEFT_ALONE, RunStatus
from common.splits import protocol_id

# A tag names a folder (`<protocol>-<tag>`): one path component, so nothing lands outside RESULTS
# or outside the runs/<model>/<dataset>/<protocol>/ depth that collect reads.
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# What a run needs to continue mid-training (common/train.py): kept in place when the same spec is
# run again, so an interrupted, killed or requeued run goes on from its last finished epoch.
RESUME_FILES = ("last.pt", "best.pt", "train_log.jsonl")
# Seconds a folder prepared by a live harness may wait for its run process to take the lock.
STARTING_GRACE_S = 300


@dataclass
class Planned:
    spec: RunSpec
    run_dir: Path
    state: str  # done | pending | failed | interrupted | stale | running | starting | abandoned | ...
    note: str = ""  # why: who holds a running folder, what made a result stale

    @property
    def todo(self) -> bool:
        # LEFT_ALONE includes SLURM-queued runs: harness/runners/slurm.py refreshes them from the cluster first.
        return self.state not in LEFT_ALONE


def expand(value: str | list[str], valid: list[str], what: str) -> list[str]:
    """'all', 'a,b' or a list -> names, each checked against `valid`."""
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip() for i in items if i.strip()]
    if items == ["all"]:
        return list(valid)
    bad = [i for i in items if i not in valid]
    if bad:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, bad))}; valid {what}s: {', '.join(valid)}")
    return items


def iterations(value: str | int | None, profile_name: str, n_splits: int) -> list[int]:
    """None -> the profile's count; N -> 0..N-1; '0,3,7' -> those. Anything that would plan no run,
    a run twice, or a split the protocol does not have is an error naming the valid range."""
    if value is None or value == "":
        value = config.profile(profile_name)["iterations"]
    valid = f"give N in 1..{n_splits} (iterations 0..N-1) or a list of distinct indices in 0..{n_splits - 1}, e.g. 0,3,7"
    text = str(value).strip()
    try:
        if "," in text:
            its = [int(v) for v in text.split(",")]
        else:
            count = int(text)
            if not 1 <= count <= n_splits:
                raise ValueError
            its = list(range(count))
    except ValueError:
        raise ConfigError(f"iterations {text!r} is not valid: {valid}") from None
    bad = [k for k in its if not 0 <= k < n_splits]
    if bad:
        raise ConfigError(f"iterations {bad} out of range: the protocol has {n_splits} splits (0..{n_splits - 1})")
    if len(set(its)) != len(its):
        raise ConfigError(f"iterations {text!r} lists an iteration twice: {valid}")
    return its


def _harness_alive(status: dict[str, Any]) -> bool:
    """A folder marked `starting` by a harness on this host that still exists, recently."""
    if status.get("host") != socket.gethostname() or time.time() - status.get("since", 0) > STARTING_GRACE_S:
        return False
    try:
        os.kill(int(status.get("harness_pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def live_state(run_dir: Path, status: dict[str, Any], lock_checked: bool = False) -> tuple[str, str] | None:
    """('running' | 'starting', who) if a live process owns the folder; ('abandoned', why) if its
    status says so but nobody does; None for a folder that is not in progress. `lock_checked`: the
    caller holds the lock itself (so nobody else does)."""
    if not lock_checked and is_held(run_dir):
        return RunStatus.RUNNING, f"in use by {holder_text(read_holder(run_dir))}"
    state = status.get("status")
    if state == RunStatus.STARTING and _harness_alive(status):
        return RunStatus.STARTING, f"being started by harness pid {status.get('harness_pid')} on {status.get('host')}"
    if state in (RunStatus.RUNNING, RunStatus.STARTING):
        return RunStatus.ABANDONED, (f"status says {state} (pid {status.get('pid', status.get('harness_pid', '?'))} on "
                             f"{status.get('hostname', status.get('host', '?'))}) but no process holds "
                             f"{run_dir / LOCK_NAME}: the run died without recording its end")
    return None


def run_state(spec: RunSpec, run_dir: Path) -> tuple[str, str]:
    """(state, note) of a planned run's folder."""
    status_path = run_dir / "status.json"
    if not status_path.is_file():
        return ((RunStatus.RUNNING, f"in use by {holder_text(read_holder(run_dir))}") if is_held(run_dir)
                else (RunStatus.PENDING, ""))
    try:
        status = read_json(status_path)
    except (OSError, ValueError) as e:
        return RunStatus.DAMAGED, f"{status_path}: unreadable ({e})"
    live = live_state(run_dir, status)
    if live is not None and live[0] != RunStatus.ABANDONED:
        return live  # another sweep's run: never redone or moved, whatever its spec
    if status.get("spec_hash") != spec.hash:
        try:
            return RunStatus.STALE, what_changed(read_json(run_dir / "spec.json"), spec)
        except (OSError, ValueError):
            return RunStatus.STALE, "the spec changed"
    if live is not None:
        return live
    state = status.get("status", RunStatus.PENDING)
    if state == RunStatus.DONE and not (run_dir / "predictions.csv").is_file():
        return RunStatus.PENDING, ""
    return state, ""


def _planned_weights(model: str, cfg: dict[str, Any]) -> dict[str, str] | str:
    """The fingerprint of the weight files the model's runs will load. resolve_weights raises the
    built-in errors; at plan time each one is the user's (a `pretrained=` path that is not there,
    files missing from the weights folder, weights asked of a model without any)."""
    try:
        return weights_fingerprint(resolve_weights(model, *model_meta(model), cfg))
    except FileNotFoundError as e:
        raise MissingWeightsError(str(e)) from None
    except ValueError as e:
        raise ConfigError(str(e)) from None


def plan(models: str | list[str], datasets: str | list[str], profile_name: str = "full",
         iters: str | int | None = None, overrides: dict[str, Any] | None = None,
         results: Path = Path("results"), data_root: str | None = None, tag: str | None = None) -> list[Planned]:
    if tag is not None and not TAG_PATTERN.fullmatch(tag):
        raise ConfigError(f"tag {tag!r} is not a safe name: 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (e.g. lr1e-4)")
    out = []
    fingerprints: dict[tuple[str, str], dict[str, Any]] = {}
    for model in expand(models, config.model_names_on_disk(), "model"):
        for dataset in expand(datasets, dataset_names(), "dataset"):
            cfg = config.resolve(model, dataset, profile_name, overrides)
            proto = protocol_id(cfg["protocol"])
            # Non-reference profiles and tagged variants get their own folder: never mixed into one table.
            if profile_name != "full":
                proto += f"-{profile_name}"
            if tag:
                proto += f"-{tag}"
            its = iterations(iters, profile_name, cfg["protocol"]["n_splits"])
            # Checked here, once: a dataset that is not there stops the plan before anything is written.
            key = (dataset, repr(cfg["data"]["synthetic"]))
            if key not in fingerprints:  # once per dataset, however many models
                fingerprints[key] = dataset_fingerprint(dataset, data_root, cfg["data"]["synthetic"])
            fingerprint = fingerprints[key]
            weights = _planned_weights(model, cfg)
            for k in its:
                spec = RunSpec(model=model, dataset=dataset, iteration=k, profile=profile_name, protocol=proto,
                               config=cfg, overrides=overrides or {}, data_root=data_root,
                               dataset_fingerprint=fingerprint, weights=weights)
                run_dir = spec.run_dir(results)
                out.append(Planned(spec, run_dir, *run_state(spec, run_dir)))
    return out


def prepare(p: Planned) -> Path:
    """Make the run folder ready: earlier attempts (stale results, failures) are moved aside, never deleted.

    Done under the folder's lock, which is released before the run process takes it; `starting`
    in status.json (with this harness's pid) covers that gap, so a second sweep planning meanwhile
    skips the folder. Raises RunLocked if another process owns the folder (another sweep got there
    first): the caller skips the run."""
    with RunLock(p.run_dir).acquire(role="harness"):
        try:
            status = read_json(p.run_dir / "status.json")
        except (OSError, ValueError):
            status = {}
        live = live_state(p.run_dir, status, lock_checked=True)
        if live is not None and live[0] != RunStatus.ABANDONED:
            raise RunLocked(f"{p.run_dir} is {live[1]}")
        # The lock file stays: moving it would let another process lock a fresh file at the same path.
        # A run of the same spec continues from its last.pt (which the run checks against the spec hash);
        # a stale folder's files, or a folder without last.pt, are all moved aside.
        keep = {LOCK_NAME}
        if p.state != RunStatus.STALE and (p.run_dir / RESUME_FILES[0]).is_file():
            keep.update(RESUME_FILES)
        entries = [e for e in p.run_dir.iterdir() if e.name not in keep]
        if entries:
            state = p.state if p.state != RunStatus.PENDING else RunStatus.INCOMPLETE
            aside = (p.run_dir.parent / "superseded" /
                     f"{p.run_dir.name}-{state}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            aside.mkdir(parents=True, exist_ok=True)
            for e in entries:
                shutil.move(str(e), str(aside / e.name))
        spec_path = p.run_dir / "spec.json"
        p.spec.save(spec_path)
        atomic_write_json(p.run_dir / "status.json",
                          {"status": RunStatus.STARTING, "spec_hash": p.spec.hash, "host": socket.gethostname(),
                           "harness_pid": os.getpid(), "since": time.time()})
    return spec_path
