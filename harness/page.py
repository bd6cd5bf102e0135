"""results/report/index.html: every table, figure and run on one page, with its images beside it.

Per protocol: the tables (with significance marks and chance level), box plots, pairwise matrices,
the critical-difference diagram, confusion matrices and ours − reference; then the inventory of every
run. The figures are copied from results/tables/<protocol>/ into results/report/<protocol>/ so the
report folder can be moved or mailed as one piece. The page is a Jinja template with HTML
autoescape: model names and error messages are arbitrary text. Torch-free.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from common.io import atomic_path, atomic_write_text
from common.status import IN_PROGRESS, RunStatus
from harness.analysis import Analysis, analyse, cd_png, confusion_stem, pairwise_png, reference_png, slug
from harness.names import METRIC_NAMES, dataset_name, model_name
from harness.report import DEFAULT_METRICS, _environment, build_context
from harness.profile import page_context as profile_page_context
from harness.significance import ALPHA
from harness.stats import read_summary

# Inventory columns in display order; absent ones (older summaries; `image` only with the container runner) are skipped.
INVENTORY_COLUMNS = ("model", "dataset", "protocol", "iteration", "status", "error_class", "error_message",
                     "pretrained", "git_commit", "wall_s", "image")


def _copy(src: Path, dst_dir: Path, name: str) -> str | None:
    """Copy out_dir/name into the report folder; the relative link, or None when the figure was not made."""
    if not (src / name).is_file():
        return None
    with atomic_path(dst_dir / name) as tmp:
        shutil.copyfile(src / name, tmp)
    return f"{dst_dir.name}/{name}"


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "n/a" if np.isnan(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _pairwise_rows(a: Analysis, metric: str, dataset: str) -> list[dict[str, Any]]:
    sub = a.pairwise[(a.pairwise["metric"] == metric) & (a.pairwise["dataset"] == dataset)]
    return [{"a": model_name(r.model_a), "b": model_name(r.model_b), "n": int(r.n), "diff": _num(r.mean_diff),
             "ci": f"[{_num(r.ci_low)}, {_num(r.ci_high)}]", "t": _num(r.t, 2), "p": _p(r.p_value),
             "p_holm": _p(r.p_holm), "significant": bool(r.p_holm < ALPHA)} for r in sub.itertuples()]


def _reference(a: Analysis, metric: str) -> dict[str, Any] | None:
    comp = a.comparison[a.comparison["metric"] == metric] if not a.comparison.empty else a.comparison
    if comp.empty:
        return None
    texts: list[str] = []
    rows = []
    for r in comp.itertuples():
        marks = []
        for text in r.notes:
            if text not in texts:
                texts.append(text)
            marks.append(texts.index(text) + 1)
        rows.append({"dataset": dataset_name(r.dataset), "model": model_name(r.model),
                     "ours": f"{_num(r.ours_mean)} ± {_num(r.ours_std)} (n={r.ours_n}, ddof={r.ddof})",
                     "ref": f"{_num(r.ref_mean)} ± {_num(r.ref_std)} (ddof={r.ref_ddof})", "diff": f"{r.diff:+.3f}",
                     "marks": marks})
    return {"rows": rows, "notes": [{"index": i, "text": t} for i, t in enumerate(texts, 1)]}


def _protocol_section(proto: str, out_dir: Path, report_dir: Path, results: Path, ddof: int,
                      metrics: Sequence[str]) -> dict[str, Any]:
    df = read_summary(out_dir / "summary.csv")
    a = analyse(df, metrics, results)
    dst = report_dir / slug(proto)
    dst.mkdir(parents=True, exist_ok=True)
    per_metric = []
    for metric in metrics:
        ranks = a.ranks[metric]
        per_metric.append({
            "metric": metric, "title": METRIC_NAMES.get(metric, metric),
            "table": build_context(df, metric, ddof), "prefix": f"{slug(proto)}-{metric}-",
            "boxplot": _copy(out_dir, dst, f"{metric}.png"),
            "pairwise": [{"dataset": dataset_name(d), "image": _copy(out_dir, dst, pairwise_png(metric, d)),
                          "rows": _pairwise_rows(a, metric, d)} for d in a.datasets],
            "cd": _copy(out_dir, dst, cd_png(metric)),
            "ranks": [{"model": model_name(r.model), "rank": f"{r.average_rank:.2f}"} for r in ranks.table.itertuples()],
            "friedman": (f"Friedman χ² = {ranks.statistic:.3f}, p = {_p(ranks.p_value)} over {len(ranks.datasets)} "
                         f"datasets; Nemenyi critical difference {ranks.critical_difference:.2f} (α = {ALPHA})"
                         if not ranks.table.empty else ""),
            "ranks_reason": ranks.reason,
            "reference": _reference(a, metric),
            "reference_image": _copy(out_dir, dst, reference_png(metric)),
        })
    confusion = []
    for cm in a.confusions:
        stem = confusion_stem(cm)
        confusion.append({"model": model_name(cm.model), "dataset": dataset_name(cm.dataset),
                          "image": _copy(out_dir, dst, stem + ".png") if cm.iterations else None,
                          "csv": _copy(out_dir, dst, stem + ".csv") if cm.iterations else None,
                          "iterations": len(cm.iterations), "missing": cm.missing})
    return {"id": slug(proto), "protocol": proto, "profiles": ", ".join(sorted(set(df["profile"])))
            if "profile" in df.columns else "", "metrics": per_metric, "refused": a.refused,
            "confusion": confusion, "confusion_note": a.confusion_note}


def _inventory(summary_csv: Path) -> tuple[list[str], list[dict[str, str]], dict[str, int]]:
    raw = pd.read_csv(summary_csv, dtype=str, keep_default_na=False)
    columns = [c for c in INVENTORY_COLUMNS if c in raw.columns]
    rows = [{**{c: row[c] for c in columns}, "failed": row["status"] not in (RunStatus.DONE, *IN_PROGRESS)}
            for _, row in raw.iterrows()]
    counts = {"total": len(raw), "done": int((raw["status"] == RunStatus.DONE).sum()),
              "in progress": int(raw["status"].isin(IN_PROGRESS).sum())}
    counts["failed"] = counts["total"] - counts["done"] - counts["in progress"]
    return columns, rows, counts


def build_page(results: Path, protocol_dirs: dict[str, Path], ddof: int = 1,
               metrics: Sequence[str] = DEFAULT_METRICS) -> Path:
    """Write results/report/index.html for the protocols in `protocol_dirs` (protocol -> its tables folder,
    already rendered by report.render) and every run of results/summary.csv; returns the page's path."""
    results = Path(results)
    report_dir = results / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    # A protocol whose runs are all still in progress has no section yet; its runs are in the inventory.
    sections = [_protocol_section(p, Path(d), report_dir, results, ddof, metrics) for p, d in sorted(protocol_dirs.items())
                if not read_summary(Path(d) / "summary.csv").empty]
    columns, runs, counts = _inventory(results / "summary.csv")
    html = _environment().get_template("index.html").render(
        sections=sections, columns=columns, runs=runs, counts=counts, ddof=ddof, alpha=ALPHA,
        profile=profile_page_context(results, report_dir))
    page = report_dir / "index.html"
    atomic_write_text(page, html)
    return page
