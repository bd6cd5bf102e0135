"""`python -m harness regress`: has a model's training behaviour changed? (`make regress`)

For each selected model × dataset: one short deterministic CPU run under the `regress` profile
(common/profiles.yaml, refined per model in its config.yaml: iteration 0, a fixed subset and step
count, one thread), then a comparison with a baseline JSON of what the same run gave before: the
training loss of every optimiser step, the validation and test accuracy, the parameter count, the
split and a sha256 of predictions.csv. One table, and a non-zero exit on any regression.

Baselines (one JSON per model × dataset):
- `synthetic`: committed in tests/regress/baselines/ (BASELINES), so CI gates every change;
- real datasets: a lab's own, under <results>/regress/baselines/ (never committed).
`--update` (make regress UPDATE=1) writes them, printing what changed against the old ones.

Tolerances: with the baseline's library versions, platform and CPU, a CPU run repeats exactly, so
the loss must match to TIGHT and everything else exactly. Anything else may change float rounding:
the loss then gets LOOSE, the accuracies ACCURACY_LOOSE, a different predictions hash is only a
warning, and the baseline should be refreshed.

Torch-free, like the rest of the harness: runs execute through a runner (`--runner`), and this
process reads their run folders.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from common import config
from common.config import ROOT, parse_overrides
from common.errors import ConfigError, FERUserError
from common.io import atomic_write_json, read_json
from common.status import RunStatus
from harness.plan import Planned, plan

logger = logging.getLogger(__name__)

PROFILE = "regress"
BASELINES = ROOT / "tests" / "regress" / "baselines"  # committed baselines (synthetic)
FORMAT = 1
# |now - baseline| <= atol + rtol * |baseline|, per optimiser step.
TIGHT = {"atol": 1e-6, "rtol": 1e-5}   # same versions, platform and CPU: only a real change moves it
LOOSE = {"atol": 1e-3, "rtol": 5e-2}   # other versions or CPU: rounding differences grow over the steps
ACCURACY_LOOSE = 0.15                   # other versions or CPU: ~3 of the ~24 test images may flip
# What a CPU run's numbers depend on besides the code: the same values -> bit-identical runs.
ENV_KEYS = ("torch", "torchvision", "timm", "numpy", "python", "platform", "cpu")
REQUIRED = {"format": int, "model": str, "dataset": str, "environment": dict, "num_params": int,
            "split_hash": str, "train_loss": list, "val_accuracy": float, "test_accuracy": float,
            "predictions_sha256": str}


class RegressError(FERUserError, ValueError):
    """A baseline that is missing or unreadable, or a selection that cannot be checked."""


def update_command(model: str, dataset: str) -> str:
    data_root = "" if dataset == "synthetic" else " DATA_ROOT=..."
    return f"make regress MODEL={model} DATASET={dataset}{data_root} UPDATE=1"


def baseline_path(model: str, dataset: str, results: Path, baselines: Path | None = None) -> Path:
    """Committed folder for the generated dataset; the user's own under results/ for real data."""
    if baselines is None:
        baselines = BASELINES if dataset == "synthetic" else Path(results) / "regress" / "baselines"
    return Path(baselines) / model / f"{dataset}.json"


def load_baseline(path: Path, model: str, dataset: str) -> dict[str, Any]:
    """Read and validate one baseline; a missing or damaged file is an error that says how to fix it."""
    if not path.is_file():
        raise RegressError(f"no baseline for {model} on {dataset} ({path}); make one with "
                           f"`{update_command(model, dataset)}`")
    fix = f"restore it from git or regenerate it with `{update_command(model, dataset)}`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RegressError(f"baseline {path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise RegressError(f"baseline {path} is not a JSON object; {fix}")
    for key, kind in REQUIRED.items():
        value = data.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RegressError(f"baseline {path}: {key!r} is missing or not a {kind.__name__} "
                               f"(got {value!r}); {fix}")
    if data["format"] != FORMAT or (data["model"], data["dataset"]) != (model, dataset):
        raise RegressError(f"baseline {path} is for {data['model']}/{data['dataset']} format {data['format']}, "
                           f"expected {model}/{dataset} format {FORMAT}; {fix}")
    if not data["train_loss"] or not all(isinstance(v, (int, float)) for v in data["train_loss"]):
        raise RegressError(f"baseline {path}: 'train_loss' must be a non-empty list of numbers; {fix}")
    return data


def cpu_name() -> str:
    """The CPU model: kernels (and so float rounding) are chosen per instruction set."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def measure(p: Planned) -> dict[str, Any]:
    """What a finished regress run gave, in the baseline's shape."""
    status = read_json(p.run_dir / "status.json")
    losses: list[float] = []
    with open(p.run_dir / "train_log.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                losses += json.loads(line).get("step_losses", [])
    with open(p.run_dir / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    test_acc = sum(r["label"] == r["pred"] for r in rows) / len(rows) if rows else float("nan")
    env = {k: status.get(k) for k in ENV_KEYS if k != "cpu"}
    env.update(cpu=cpu_name(), git_commit=status.get("git_commit"))
    return {"format": FORMAT, "model": p.spec.model, "dataset": p.spec.dataset, "profile": p.spec.profile,
            "iteration": p.spec.iteration, "overrides": p.spec.overrides, "spec_hash": p.spec.hash,
            "environment": env, "num_params": int(status["num_params"]), "split_hash": status["split_hash"],
            "train_loss": losses, "val_accuracy": float(status["best_val_accuracy"]), "test_accuracy": test_acc,
            "predictions_sha256": sha256(p.run_dir / "predictions.csv")}


def same_environment(base: dict[str, Any], now: dict[str, Any]) -> bool:
    return all(base["environment"].get(k) == now["environment"].get(k) for k in ENV_KEYS)


def _row(model: str, quantity: str, base: Any, now: Any, diff: Any, verdict: str) -> dict[str, Any]:
    return {"model": model, "quantity": quantity, "baseline": base, "now": now, "difference": diff, "verdict": verdict}


def compare(base: dict[str, Any], now: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per quantity; verdict ok | REGRESSION | warning (a failed run is FAILED, see regress)."""
    m = now["model"]
    strict = same_environment(base, now)
    rows = []
    for key in ("num_params", "split_hash"):
        ok = base[key] == now[key]
        diff = now[key] - base[key] if key == "num_params" else ("" if ok else "differs")
        rows.append(_row(m, key, base[key], now[key], diff, "ok" if ok else "REGRESSION"))
    rows.append(_compare_losses(m, base["train_loss"], now["train_loss"], TIGHT if strict else LOOSE))
    for key in ("val_accuracy", "test_accuracy"):
        diff = now[key] - base[key]
        ok = abs(diff) <= (1e-9 if strict else ACCURACY_LOOSE)
        rows.append(_row(m, key, base[key], now[key], diff, "ok" if ok else "REGRESSION"))
    same = base["predictions_sha256"] == now["predictions_sha256"]
    verdict = "ok" if same else ("REGRESSION" if strict else "warning")
    rows.append(_row(m, "predictions_sha256", base["predictions_sha256"][:12], now["predictions_sha256"][:12],
                     "" if same else "differs", verdict))
    return rows


def _compare_losses(model: str, base: list[float], now: list[float], tol: dict[str, float]) -> dict[str, Any]:
    """The loss curve as one row: the first step out of tolerance, else the largest difference."""
    if len(base) != len(now):
        return _row(model, "train_loss steps", len(base), len(now), len(now) - len(base), "REGRESSION")
    worst, worst_i = 0.0, 0
    for i, (b, n) in enumerate(zip(base, now)):
        d = abs(n - b) if math.isfinite(n) else math.inf
        if d > tol["atol"] + tol["rtol"] * abs(b):
            return _row(model, f"train_loss[step {i + 1}]", b, n, n - b, "REGRESSION")
        if d >= worst:
            worst, worst_i = d, i
    where = f", largest at step {worst_i + 1}" if worst else ", identical"
    return _row(model, f"train_loss[{len(base)} steps{where}]", base[worst_i], now[worst_i],
                now[worst_i] - base[worst_i], "ok")


def _fmt(v: Any, signed: bool = False) -> str:
    if isinstance(v, float):
        return f"{v:+.3g}" if signed else f"{v:.6f}"
    if isinstance(v, int) and signed:
        return f"{v:+d}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ["model", "quantity", "baseline", "now", "difference", "verdict"]
    cells = [[_fmt(r[c], signed=c == "difference") for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def _env_note(base: dict[str, Any], now: dict[str, Any]) -> str:
    diffs = [f"{k} {base['environment'].get(k)} -> {now['environment'].get(k)}" for k in ENV_KEYS
             if base["environment"].get(k) != now["environment"].get(k)]
    return (f"WARNING: {now['model']}/{now['dataset']}: baseline made with another environment ({'; '.join(diffs)}): "
            f"compared with the looser tolerance (loss atol {LOOSE['atol']} + rtol {LOOSE['rtol']}, accuracy "
            f"±{ACCURACY_LOOSE}, predictions hash a warning). Refresh it: `{update_command(now['model'], now['dataset'])}`")


def _fresh(planned: list[Planned]) -> None:
    """A regression check always trains: the spec hash does not cover the code, so an earlier run of
    the same spec says nothing about this tree. The folders are scratch space, replaced each time."""
    for p in planned:
        if p.run_dir.exists():
            shutil.rmtree(p.run_dir)
        p.state = RunStatus.PENDING


def regress(args: argparse.Namespace) -> int:
    """Plan the regress runs, run them, compare (or update) the baselines; 0 pass, 1 regression."""
    from harness.cli import _prepare_generated
    from harness.runners import get_runner

    try:  # an unknown runner is an error before anything runs
        runner = get_runner(args.runner)
    except ValueError as e:  # get_runner names the valid runners; here the name came from the user
        raise ConfigError(str(e)) from None
    work = Path(args.results) / "regress"
    planned = plan(args.model, args.dataset, PROFILE, None, parse_overrides(args.overrides), work, args.data_root)
    paths = {(p.spec.model, p.spec.dataset): baseline_path(p.spec.model, p.spec.dataset, args.results, args.baselines)
             for p in planned}
    old: dict[tuple[str, str], dict[str, Any] | None] = {}
    problems = []
    for (model, dataset), path in paths.items():
        try:
            old[(model, dataset)] = load_baseline(path, model, dataset)
        except RegressError as e:
            if not args.update:
                problems.append(str(e))
                continue
            old[(model, dataset)] = None  # an update writes a new one
            if path.exists():
                logger.info(f"replacing the damaged baseline: {e}")
    if problems:  # before any training: a missing baseline is an error, never a pass
        raise RegressError("\n".join(problems))

    _fresh(planned)
    _prepare_generated(planned)
    jobs = args.jobs or int(config.profile(PROFILE).get("jobs", 1))
    runner(planned, jobs=jobs, timeout=args.timeout)

    rows, notes, failed, measured = [], [], 0, {}
    for p in planned:
        key = (p.spec.model, p.spec.dataset)
        status = _status(p)
        if status.get("status") != RunStatus.DONE:
            failed += 1
            why = f"{status.get('status')}: {status.get('error_class')}: {str(status.get('error_message'))[:120]}"
            rows.append(_row(p.spec.model, "run", "done", why, "", "FAILED"))
            continue
        now = measure(p)
        if not now["train_loss"]:  # a baseline without a loss curve could never catch a change
            failed += 1
            rows.append(_row(p.spec.model, "train_loss", "per-step losses", "none recorded (train_log.jsonl "
                             "step_losses)", "", "FAILED"))
            continue
        measured[key] = now
        base = old[key]
        if base is None:
            rows.append(_row(p.spec.model, "baseline", "(none)", "new", "", "new"))
            continue
        if not same_environment(base, now):
            notes.append(_env_note(base, now))
        rows += compare(base, now)
    if args.update:  # what the new baselines change: shown, then written
        rows = [{**r, "verdict": "changed"} if r["verdict"] == "REGRESSION" else r for r in rows]
    print("\n" + format_table(rows))
    for note in notes:
        print(note)
    regressions = [r for r in rows if r["verdict"] in ("REGRESSION", "FAILED")]
    if args.update:
        for key, now in measured.items():
            atomic_write_json(paths[key], now)
            logger.info(f"wrote baseline {_shown(paths[key])}")
        if failed:
            logger.error(f"{failed} run(s) failed: their baselines were not written")
        return 1 if failed else 0
    if failed:
        logger.error(f"FAILED: {failed} run(s) did not give a result; their logs are under {work / 'runs'}")
    changed = [r for r in regressions if r["verdict"] == "REGRESSION"]
    if changed:
        names = sorted({f"{r['model']} ({r['quantity']})" for r in changed})
        models = ",".join(sorted({r["model"] for r in changed}))
        datasets = ",".join(sorted({p.spec.dataset for p in planned}))
        logger.error(f"REGRESSION: {', '.join(names)}. If the change is intended, update the baselines with "
              f"`{update_command(models, datasets)}` and commit them.")
    if regressions:
        return 1
    logger.info(f"regress: {len(planned)} run(s) match their baselines")
    return 0


def _status(p: Planned) -> dict[str, Any]:
    try:
        return read_json(p.run_dir / "status.json")
    except (OSError, ValueError):
        return {"status": RunStatus.FAILED, "error_class": "NoStatus", "error_message": "the run wrote no status.json"}


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def register(sub: argparse._SubParsersAction) -> None:
    """The `regress` subcommand of `python -m harness`."""
    p = sub.add_parser("regress", help="short deterministic CPU runs compared with baselines (make regress)")
    p.add_argument("--model", default="all", help="model name(s), comma-separated, or 'all' (default: all)")
    p.add_argument("--dataset", default="synthetic", help="dataset name(s), comma-separated (default: synthetic)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides on top of the regress profile (a deliberate change to check)")
    p.add_argument("--data-root", default=os.environ.get("FER_DATA_ROOT"),
                   help="folder holding the datasets (default: $FER_DATA_ROOT, else data/)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results folder: runs go to <results>/regress/, real-data baselines to "
                        "<results>/regress/baselines/ (default: results)")
    p.add_argument("--baselines", type=Path, default=None,
                   help=f"baseline folder (default: {_shown(BASELINES)} for synthetic, "
                        "<results>/regress/baselines for real datasets)")
    p.add_argument("--update", action="store_true", help="write the baselines from this run (make regress UPDATE=1)")
    p.add_argument("--runner", default="local", help="where runs execute (python -m harness list runners)")
    p.add_argument("--jobs", type=int, default=None, help="runs in parallel (default: the regress profile's)")
    p.add_argument("--timeout", type=float, default=None, help="per-run timeout in seconds")
    p.set_defaults(func=regress)
