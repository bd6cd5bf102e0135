"""Collect run folders into results/summary.csv; metrics are computed here, from predictions.

Read-only on the run folders (it works on a results folder whose runs/ cannot be written). Every
run becomes one row: a `done` run whose files do not hold a whole result (unreadable spec or
status, predictions truncated, duplicated, not the run's test fold, probabilities that do not sum
to 1) is a `damaged` row naming the file and the reason, and a `running` run that no process holds
is `abandoned`; tables show both as failures, never as numbers and never dropped.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from common import predictions
from common.errors import MissingPathError
from common.io import atomic_write_text, read_json
from common.metrics import compute, majority_rate
from common.status import RunStatus
from harness.plan import live_state

SUMMARY_COLUMNS = [
    "model", "dataset", "protocol", "iteration", "status", "accuracy", "balanced_accuracy", "macro_f1",
    "majority_rate", "n_train", "n_val", "n_test", "best_epoch", "epochs_run", "wall_s", "pretrained", "image",
    "profile", "split_hash", "spec_hash", "error_class", "error_message", "git_commit", "run_dir",
    # What the run's training cost, measured by the run itself (common/run.training_cost).
    "train_images_per_s", "s_per_epoch", "peak_memory_mb",
]


def run_dirs(results: Path) -> list[Path]:
    """Current runs only: results/runs/<model>/<dataset>/<protocol>/iter-<k>/ (superseded ones are aside)."""
    # Folders with any file (a run folder whose spec.json was lost is still a run, shown as damaged).
    found = [p.parent for p in Path(results).glob("runs/*/*/*/iter-*/status.json")]
    found += [p.parent for p in Path(results).glob("runs/*/*/*/iter-*/spec.json")]
    found = list(set(found))
    return sorted(found, key=lambda p: (p.parts[-4], p.parts[-3], p.parts[-2], int(p.name.split("-")[1])))


def _damaged(row: dict[str, Any], reason: str) -> dict[str, Any]:
    row.update(status=RunStatus.DAMAGED, error_class="DamagedRun", error_message=reason[:300],
               accuracy="", balanced_accuracy="", macro_f1="", majority_rate="")
    return row


def collect_run(run_dir: Path, results: Path) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
    # Identity from the path first: a run whose spec cannot be read still gets its row.
    model, dataset, protocol, it = run_dir.parts[-4], run_dir.parts[-3], run_dir.parts[-2], run_dir.name
    row.update(model=model, dataset=dataset, protocol=protocol, iteration=it.split("-", 1)[1],
               run_dir=str(run_dir.relative_to(results)) if run_dir.is_relative_to(results) else str(run_dir))
    try:
        spec = read_json(run_dir / "spec.json")
        row.update(model=spec["model"], dataset=spec["dataset"], protocol=spec["protocol"],
                   iteration=spec["iteration"], profile=spec["profile"], spec_hash=spec["spec_hash"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _damaged(row, f"{run_dir / 'spec.json'}: unreadable ({type(e).__name__}: {e})")
    status_path = run_dir / "status.json"
    if not status_path.exists():
        row["status"] = RunStatus.PENDING
        return row
    try:
        status = read_json(status_path)
        if not isinstance(status, dict):
            raise ValueError(f"expected an object, got {type(status).__name__}")
    except (OSError, ValueError) as e:
        return _damaged(row, f"{status_path}: unreadable ({type(e).__name__}: {e})")
    row["status"] = status.get("status", RunStatus.PENDING)
    for key in ("n_train", "n_val", "n_test", "best_epoch", "epochs_run", "wall_s", "split_hash",
                "error_class", "error_message", "git_commit", "image", "train_images_per_s", "s_per_epoch",
                "peak_memory_mb"):
        if status.get(key) is not None:
            row[key] = status[key]
    row["pretrained"] = (status.get("pretrained") or {}).get("summary", "")
    live = live_state(run_dir, status)
    if live is not None and live[0] == RunStatus.ABANDONED:
        row.update(status=RunStatus.ABANDONED, error_class="Abandoned", error_message=live[1][:300])
    elif live is not None:
        row["status"] = RunStatus.RUNNING  # `starting` included: in progress, not yet a result or a failure
    elif row["status"] == RunStatus.DONE:
        if status.get("spec_hash") != spec["spec_hash"]:
            return _damaged(row, f"{status_path}: belongs to another spec ({status.get('spec_hash')} "
                                 f"!= {spec['spec_hash']})")
        try:
            preds = predictions.check(run_dir / "predictions.csv", status)
        except ValueError as e:
            return _damaged(row, str(e))
        classes = [c for c in preds.columns if c.startswith("p_")]
        m = compute(preds["label"].to_numpy(), preds["pred"].to_numpy(), len(classes))
        row.update(accuracy=round(m["accuracy"], 6), balanced_accuracy=round(m["balanced_accuracy"], 6),
                   macro_f1=round(m["macro_f1"], 6), majority_rate=round(majority_rate(preds["label"].to_numpy()), 6))
    elif row["error_message"]:
        row["error_message"] = str(row["error_message"]).splitlines()[0][:300] if str(row["error_message"]) else ""
    return row


def collect(results: Path = Path("results")) -> Path:
    """Write results/summary.csv (one row per run, fixed column order) and return its path."""
    results = Path(results)
    if not results.is_dir():
        raise MissingPathError(f"results folder {results} does not exist (mistyped RESULTS=?); "
                                "nothing to collect")
    rows = [collect_run(d, results) for d in run_dirs(results)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = results / "summary.csv"
    atomic_write_text(out, buf.getvalue())
    return out
