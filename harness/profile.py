"""`python -m harness profile`: the efficiency table, one row per model, per device.

Each model is measured by `python -m common.profile MODEL` in its own process (torch stays out of the
harness, and a process's peak RSS then belongs to one model); a model that fails gets a row with its
error, and the others go on. Writes results/profile/<device>.csv and profile_<device>.{md,html,tex};
`make report` shows them and plots accuracy against GMACs and throughput (harness/report.py).
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common.config import ROOT
from common.io import atomic_write_text, read_json
from common.status import RunStatus
from harness.names import MODEL_ORDER, model_name, ordered

COLUMNS = ["model", "dataset", "image_size", "params_m", "trainable_params_m", "gmacs", "latency_ms", "batch",
           "infer_images_per_s", "train_batch", "train_images_per_s", "peak_memory_mb", "memory_kind", "device",
           "device_detail", "threads", "dtype", "warmup", "repeats", "torch", "torchvision", "timm", "cuda",
           "python", "git_commit", "hostname", "error"]
# What the table shows: (CSV column, header).
SHOWN = [("image_size", "Input (px)"), ("params_m", "Params (M)"), ("trainable_params_m", "Trainable (M)"),
         ("gmacs", "GMACs"), ("latency_ms", "Latency b=1 (ms)"), ("infer_images_per_s", "Inference (img/s)"),
         ("train_images_per_s", "Training (img/s)"), ("peak_memory_mb", "Peak memory (MB)")]

logger = logging.getLogger(__name__)


def profile_dir(results: Path) -> Path:
    return Path(results) / "profile"


def measure(model: str, args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """One model's row from `python -m common.profile` (in a subprocess); a failure is a row with `error`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "common.profile", model, "--out", str(out), *args]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"model": model, "error": f"timed out after {timeout:g} s"}
        if proc.returncode != 0 or not out.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return {"model": model, "error": lines[-1][:300] if lines else f"exit code {proc.returncode}"}
        logger.info(proc.stdout.strip())
        return read_json(out)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{c: row.get(c, "") for c in COLUMNS} for row in rows])
    atomic_write_text(path, buf.getvalue())
    return path


def read_profiles(results: Path) -> dict[str, list[dict[str, str]]]:
    """Every results/profile/<device>.csv: device -> rows."""
    return {p.stem: list(csv.DictReader(p.open(encoding="utf-8"))) for p in sorted(profile_dir(results).glob("*.csv"))}


def table_context(device: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    """The one context the md/html/tex templates share."""
    first = next((r for r in rows if not r.get("error")), {})
    body = [[model_name(r["model"]), *(r.get(c, "") or "—" for c, _ in SHOWN)] for r in rows if not r.get("error")]
    notes = [f"{model_name(r['model'])}: not measured ({r['error']})" for r in rows if r.get("error")]
    caption = (f"{first.get('device_detail', device)} ({device}), {first.get('threads', '?')} threads, "
               f"{first.get('dtype', 'float32')}, torch {first.get('torch', '?')}; GMACs of one forward pass at "
               f"batch 1 (torch FlopCounterMode); latency at batch 1, inference at batch {first.get('batch', '?')}, "
               f"training steps at batch {first.get('train_batch', '?')}: medians of {first.get('repeats', '?')} "
               f"timed repeats after warm-up; peak memory: "
               + ("CUDA peak allocated" if first.get("memory_kind") == "cuda_peak_allocated"
                  else "peak RSS of the process (Python and torch included)"))
    return {"title": f"Efficiency on {device}", "caption": caption, "device": device,
            "columns": ["Model", *(h for _, h in SHOWN)], "rows": body, "notes": notes}


def render_tables(device: str, rows: list[dict[str, str]], out_dir: Path) -> list[Path]:
    from harness.report import FORMATS, _environment

    context = table_context(device, rows)
    written = []
    for fmt in FORMATS:
        path = out_dir / f"profile_{device}.{fmt}"
        atomic_write_text(path, _environment().get_template(f"profile.{fmt}").render(**context))
        written.append(path)
    return written


def cmd_profile(args: argparse.Namespace) -> int:
    from common import config
    from harness.plan import expand

    models = expand(args.model, config.model_names_on_disk(), "model")
    extra = ["--device", args.device, "--batch", str(args.batch), "--train-batch", str(args.train_batch),
             "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--dataset", args.dataset]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    if args.overrides:
        extra += ["--set", *args.overrides]
    rows = [measure(m, extra, args.timeout) for m in models]
    for r in rows:
        if r.get("error"):
            logger.error(f"{r['model']}: FAILED: {r['error']}")
    measured = [r for r in rows if not r.get("error")]
    device = measured[0]["device"] if measured else args.device.replace(":", "-")
    out_dir = profile_dir(args.results)
    path = out_dir / f"{device}.csv"
    # Rows of models not measured this time stay, so `MODEL=dan` then `MODEL=adadf` build one table.
    old = {r["model"]: r for r in read_profiles(args.results).get(device, [])}
    merged = {**old, **{r["model"]: r for r in rows}}
    final = [merged[m] for m in ordered(merged, MODEL_ORDER)]
    write_csv(final, path)
    tables = render_tables(device, [{k: str(v) for k, v in r.items()} for r in final], out_dir)
    logger.info(f"wrote {path} and {', '.join(t.name for t in tables)}")
    return 1 if len(measured) < len(rows) else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure every model's parameters, GMACs, speed and memory")
    p.add_argument("--model", default="all", help="model name(s), comma-separated, or 'all' (default: all)")
    p.add_argument("--dataset", default="rafdb", help="whose configuration sets each model's input size")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--batch", type=int, default=64, help="inference throughput batch (default: 64)")
    p.add_argument("--train-batch", type=int, default=64, help="training step batch (default: 64)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default: 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls; the median is kept (default: 10)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per model")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for every model, e.g. data.image_size=112")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.set_defaults(func=cmd_profile)


# ---- the report page: the profile tables and accuracy against cost ------------------------------

# x axes of the efficiency plots: (profile column, axis label, file stem).
COST_AXES = [("gmacs", "GMACs per image (forward pass)", "gmacs"),
             ("infer_images_per_s", "inference throughput (images/s)", "throughput")]


def plot_accuracy_vs_cost(summary: "pd.DataFrame", rows: list[dict[str, str]], column: str, label: str,
                          path: Path, metric: str = "accuracy") -> Path | None:
    """One point per model and dataset: mean `metric` of the done runs against the model's measured cost."""
    import pandas as pd

    from harness.names import DATASET_ORDER, dataset_name
    from harness.plots import _figure, _save

    cost = {r["model"]: float(r[column]) for r in rows if not r.get("error") and r.get(column)}
    done = summary[(summary["status"] == RunStatus.DONE) & summary["model"].isin(list(cost))]
    if done.empty:
        return None
    means = done.assign(value=pd.to_numeric(done[metric])).groupby(["dataset", "model"])["value"].mean()
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot()
    for dataset in ordered(set(means.index.get_level_values(0)), DATASET_ORDER):
        sub = means.loc[dataset]
        ax.scatter([cost[m] for m in sub.index], sub.values, label=dataset_name(dataset))
        for m, v in sub.items():
            ax.annotate(model_name(m), (cost[m], v), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(f"mean {metric.replace('_', ' ')}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def page_context(results: Path, report_dir: Path) -> list[dict[str, Any]]:
    """Per device: the HTML table (rendered with autoescape) and, per protocol, the accuracy-vs-cost
    plots, written beside the page. Empty when `make profile` has not been run."""
    import pandas as pd
    from markupsafe import Markup

    from harness.analysis import slug
    from harness.report import _environment

    profiles = read_profiles(results)
    summary_csv = Path(results) / "summary.csv"
    summary = pd.read_csv(summary_csv, dtype=str, keep_default_na=False) if summary_csv.is_file() else None
    out = []
    for device, rows in profiles.items():
        html = _environment().get_template("profile.html").render(**table_context(device, rows))
        plots = []
        for proto in sorted(set(summary["protocol"])) if summary is not None and not summary.empty else []:
            for column, label, stem in COST_AXES:
                name = f"efficiency_{slug(proto)}_{device}_{stem}.png"
                made = plot_accuracy_vs_cost(summary[summary["protocol"] == proto], rows, column, label,
                                             report_dir / name)
                if made is not None:
                    plots.append({"image": name, "caption": f"{proto}: accuracy against {label} on {device}"})
        out.append({"device": device, "table": Markup(html), "csv": f"../profile/{device}.csv", "plots": plots})
    return out
