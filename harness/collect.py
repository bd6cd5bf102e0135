"""Collect run folders into results/summary.csv; metrics are computed here, from predictions."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd

from common.io import atomic_write_json, atomic_write_text, read_json
from common.metrics import compute, majority_rate

SUMMARY_COLUMNS = [
    "model", "dataset", "protocol", "iteration", "status", "accuracy", "balanced_accuracy", "macro_f1",
    "majority_rate", "n_train", "n_val", "n_test", "best_epoch", "epochs_run", "wall_s", "pretrained",
    "profile", "split_hash", "spec_hash", "error_class", "error_message", "git_commit", "run_dir",
]


def run_dirs(results: Path) -> list[Path]:
    """Current runs only: results/runs/<model>/<dataset>/<protocol>/iter-<k>/ (superseded ones are aside)."""
    found = [p.parent for p in Path(results).glob("runs/*/*/*/iter-*/spec.json")]
    return sorted(found, key=lambda p: (p.parts[-4], p.parts[-3], p.parts[-2], int(p.name.split("-")[1])))


def collect_run(run_dir: Path, results: Path) -> dict[str, Any]:
    spec = read_json(run_dir / "spec.json")
    try:
        status = read_json(run_dir / "status.json")
    except (OSError, ValueError):
        status = {"status": "pending"}
    row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
    row.update(model=spec["model"], dataset=spec["dataset"], protocol=spec["protocol"], iteration=spec["iteration"],
               profile=spec["profile"], spec_hash=spec["spec_hash"], status=status.get("status", "pending"),
               run_dir=str(run_dir.relative_to(results)) if run_dir.is_relative_to(results) else str(run_dir))
    for key in ("n_train", "n_val", "n_test", "best_epoch", "epochs_run", "wall_s", "split_hash",
                "error_class", "error_message", "git_commit"):
        if status.get(key) is not None:
            row[key] = status[key]
    row["pretrained"] = (status.get("pretrained") or {}).get("summary", "")
    if row["status"] == "done":
        if status.get("spec_hash") != spec["spec_hash"]:
            row.update(status="failed", error_class="StaleStatus", error_message="status.json belongs to another spec")
            return row
        preds = pd.read_csv(run_dir / "predictions.csv")
        classes = [c for c in preds.columns if c.startswith("p_")]
        m = compute(preds["label"].to_numpy(), preds["pred"].to_numpy(), len(classes))
        row.update(accuracy=round(m["accuracy"], 6), balanced_accuracy=round(m["balanced_accuracy"], 6),
                   macro_f1=round(m["macro_f1"], 6), majority_rate=round(majority_rate(preds["label"].to_numpy()), 6))
        atomic_write_json(run_dir / "metrics.json", {**m, "class_names": [c[2:] for c in classes]})
    elif row["error_message"]:
        row["error_message"] = str(row["error_message"]).splitlines()[0][:300] if str(row["error_message"]) else ""
    return row


def collect(results: Path = Path("results")) -> Path:
    """Write results/summary.csv (one row per run, fixed column order) and return its path."""
    results = Path(results)
    rows = [collect_run(d, results) for d in run_dirs(results)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = results / "summary.csv"
    atomic_write_text(out, buf.getvalue())
    return out
