"""Render result tables (Markdown, HTML, LaTeX) and plots from the rows of results/summary.csv.

One context builder feeds three Jinja templates in harness/templates/, so the numbers, bold cell,
n and footnotes are decided once and the formats only differ in markup. HTML is autoescaped and
every LaTeX value goes through the `tex` filter, because model names and error messages are
arbitrary text. Torch-free: the harness never imports model code.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from common.errors import ConfigError
from common.io import atomic_path
from common.status import RunStatus
from harness.analysis import analyse, write_analysis
from harness.names import DATASET_ORDER, METRIC_NAMES, MODEL_ORDER, dataset_name, model_name, ordered
from harness.plots import plot_metric
from harness.significance import ALPHA, not_worse_than_best, pairwise
from harness.stats import (METRICS, aggregate, chance_levels, is_pretrained, read_summary, split_mismatches,
                           summary_frame)

DEFAULT_METRICS = ("accuracy", "balanced_accuracy")
FORMATS = ("md", "html", "tex")
TEMPLATE_DIR = Path(__file__).parent / "templates"

# Single pass over the text so the backslashes a replacement introduces are never escaped again.
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "<": r"\textless{}", ">": r"\textgreater{}", "±": r"\ensuremath{\pm}", "—": "---", "–": "--",
        "†": r"\ensuremath{^\dagger}", "α": r"\ensuremath{\alpha}", "−": r"\ensuremath{-}"}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX))


def tex_escape(value: Any) -> str:
    """Escape text for LaTeX (pdflatex-safe, including <, >, ± and dashes)."""
    return _TEX_RE.sub(lambda m: _TEX[m.group()], str(value))


def md_escape(value: Any) -> str:
    """Keep arbitrary text from breaking a Markdown table row (pipes, newlines)."""
    return " ".join(str(value).splitlines()).replace("|", r"\|")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"], default=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["tex"] = tex_escape
    env.filters["md"] = md_escape
    return env


def _fmt(x: float) -> str | None:
    return None if math.isnan(x) else f"{x:.3f}"


def _cell(stat: pd.Series | None, best: str | None, note: int | None, mark: bool = False) -> dict[str, Any]:
    """What a table cell shows; `kind` is value (>= 1 successful run), failed (runs, none done) or missing.

    `mark`: the model is the best of its row or not significantly worse than it (see significance.py).
    """
    if stat is None:
        return {"kind": "missing", "mean": None, "std": None, "bold": False, "n": "0", "failed": 0, "note": None,
                "mark": False}
    n_done, n_total = int(stat["n_done"]), int(stat["n_total"])
    mean = _fmt(stat["mean"])
    return {
        "kind": "value" if n_done else "failed",
        "mean": mean,
        "std": _fmt(stat["std"]),
        "bold": mean is not None and mean == best,
        "n": str(n_done) if n_done == n_total else f"{n_done}/{n_total}",
        "failed": n_total - n_done,
        "note": note,
        "mark": mark and n_done > 0,
    }


def _init_line(df: pd.DataFrame, models: Sequence[str]) -> tuple[str, list[str]]:
    """Which columns used pretrained weights; a warning for each column that mixes both kinds."""
    groups: dict[str, list[str]] = {"pretrained": [], "from scratch": [], "mixed": []}
    warnings = []
    done = df[df["status"] == RunStatus.DONE]
    for model in models:
        kinds = {is_pretrained(v) for v in done.loc[done["model"] == model, "pretrained"]}
        if kinds == {True, False}:
            groups["mixed"].append(model_name(model))
            values = ", ".join(sorted(set(done.loc[done["model"] == model, "pretrained"])))
            warnings.append(f"{model_name(model)} mixes pretrained and from-scratch runs ({values}).")
        elif kinds:
            groups["pretrained" if True in kinds else "from scratch"].append(model_name(model))
    parts = [f"{kind}: {', '.join(names)}" for kind, names in groups.items() if names]
    return "Initialisation — " + ("; ".join(parts) if parts else "no successful runs") + ".", warnings


def _split_warnings(mismatches: pd.DataFrame) -> list[str]:
    out = []
    for m in mismatches.itertuples():
        by_hash: dict[str, list[str]] = {}
        for model, h in sorted(m.hashes.items()):
            by_hash.setdefault(h, []).append(model_name(model))
        groups = "; ".join(f"{h}: {', '.join(names)}" for h, names in sorted(by_hash.items()))
        out.append(f"Split mismatch on {dataset_name(m.dataset)} iter {m.iteration}: "
                   f"models ran on different folds ({groups}); their numbers are not directly comparable.")
    return out


def build_context(df: pd.DataFrame, metric: str, ddof: int = 1) -> dict[str, Any]:
    """Everything a table template needs, already decided: order, text, bold, marks, chance, n, notes, warnings."""
    stats = aggregate(df, metric, ddof)
    by_cell = {(s["dataset"], s["model"]): s for _, s in stats.iterrows()}
    datasets = ordered(df["dataset"], DATASET_ORDER)
    models = ordered(df["model"], MODEL_ORDER)
    marks = not_worse_than_best(df, pairwise(df, metric, models)[0], metric)
    chance = chance_levels(df, metric)
    notes: list[str] = []
    rows = []
    for dataset in datasets:
        # Compare the rounded means so every cell that reads as the best is bold, ties included.
        means = [_fmt(by_cell[(dataset, m)]["mean"]) for m in models if (dataset, m) in by_cell]
        means = [x for x in means if x is not None]
        best = max(means, key=float) if means else None
        cells = []
        for model in models:
            stat = by_cell.get((dataset, model))
            note = None
            if stat is not None and stat["failures"]:
                notes.append(f"{model_name(model)} on {dataset_name(dataset)}: "
                             f"{len(stat['failures'])} of {stat['n_total']} runs without a result — "
                             + "; ".join(stat["failures"]))
                note = len(notes)
            cells.append(_cell(stat, best, note, model in marks.get(dataset, ())))
        rows.append({"name": dataset_name(dataset), "cells": cells,
                     "chance": _fmt(chance[dataset]) if dataset in chance else "n/a"})
    protocols = sorted(set(df["protocol"]))
    init_line, warnings = _init_line(df, models)
    if len(protocols) > 1:
        warnings.append(f"The table mixes protocols ({', '.join(protocols)}); cells are not on the same folds.")
    warnings += _split_warnings(split_mismatches(df))
    title = METRIC_NAMES.get(metric, metric)
    caption = (f"mean ± std over iterations (std with ddof={ddof}); n = successful runs "
               f"(successful/total when some failed); bold = best mean of the row; † = the best or not "
               f"significantly worse than it (corrected resampled t-test, Holm over the row's pairs, α = {ALPHA}). "
               f"Majority class = the score of always predicting the most frequent class. "
               f"Protocol: {', '.join(protocols)}. {init_line}")
    return {"metric": metric, "title": title, "ddof": ddof, "caption": caption, "has_chance": bool(chance),
            "columns": [model_name(m) for m in models], "rows": rows,
            "notes": [{"index": i, "text": t} for i, t in enumerate(notes, 1)], "warnings": warnings}


def render_table(context: dict[str, Any], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    return _environment().get_template(f"table.{fmt}").render(**context, table=context)


def long_stats(df: pd.DataFrame, metrics: Sequence[str], ddof: int) -> pd.DataFrame:
    """The aggregate of every metric in one long table (one row per metric, dataset, model)."""
    parts = []
    for metric in metrics:
        stats = aggregate(df, metric, ddof)
        stats.insert(0, "metric", metric)
        stats.insert(5, "ddof", ddof)
        parts.append(stats)
    out = pd.concat(parts, ignore_index=True)
    for col in ("failures", "protocols", "pretrained"):
        out[col] = out[col].map("; ".join)
    return out


def _check_metrics(metrics: Sequence[str]) -> None:
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ConfigError(f"unknown metric(s) {bad}; valid: {', '.join(METRICS)}")


def _runs(summary: pd.DataFrame | Path) -> pd.DataFrame:
    """One protocol's runs: rows already in memory (as collect wrote them, all text) or a summary.csv."""
    if isinstance(summary, pd.DataFrame):
        return summary_frame(summary)
    return read_summary(Path(summary))


def render(summary: pd.DataFrame | Path, out_dir: Path, ddof: int = 1, metrics: Sequence[str] = DEFAULT_METRICS,
           results: Path | None = None) -> list[Path]:
    """Write the tables and statistics of one protocol's runs into out_dir; return the paths.

    `summary`: the protocol's rows of summary.csv (a DataFrame, or the path of such a file).
    Per metric <metric>.md/.html/.tex/.png (box plots with the majority-class line); summary_stats.csv;
    pairwise.csv, ranks.csv and the figures of analysis.py. `results` (the folder run_dir is relative
    to) is where the confusion matrices read predictions.csv; without it they are skipped.
    """
    _check_metrics(metrics)
    df = _runs(summary)
    if df.empty:  # every run of this protocol is still in progress (another sweep): nothing to show yet
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in metrics:
        context = build_context(df, metric, ddof)
        for fmt in FORMATS:
            path = out_dir / f"{metric}.{fmt}"
            with atomic_path(path) as tmp:
                tmp.write_text(render_table(context, fmt), encoding="utf-8")
            written.append(path)
        written.append(plot_metric(df, metric, out_dir / f"{metric}.png", chance_levels(df, metric)))
    stats_path = out_dir / "summary_stats.csv"
    with atomic_path(stats_path) as tmp:
        long_stats(df, metrics, ddof).to_csv(tmp, index=False)
    written.append(stats_path)
    written += write_analysis(analyse(df, metrics, results), out_dir)
    return written


def render_markdown(summary: pd.DataFrame | Path, ddof: int = 1, metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """The Markdown tables of all `metrics` (`summary` as in render), for the terminal at the end of `make run`."""
    _check_metrics(metrics)
    df = _runs(summary)
    return "\n".join(render_table(build_context(df, m, ddof), "md") for m in metrics)
