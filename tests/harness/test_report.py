"""Table rendering from summary.csv: statistics, bold/n/footnotes, escaping, booktabs, split check, plots."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report import render, render_markdown
from harness.stats import aggregate, read_summary, split_mismatches

COLUMNS = ["model", "dataset", "protocol", "iteration", "status", "accuracy", "balanced_accuracy", "macro_f1",
           "n_train", "n_val", "n_test", "best_epoch", "epochs_run", "wall_s", "pretrained", "split_hash",
           "spec_hash", "error_class", "error_message", "git_commit", "run_dir"]
PROTOCOL = "shuffle-n10-t20-v25-s42"
# (model, dataset) -> per-iteration accuracy; None = a failed run.
ACCURACY = {
    ("dan", "rafdb"): [0.80, 0.82, 0.84],       # mean 0.820, std 0.020 (ddof 1) / 0.01633 (ddof 0)
    ("poster", "rafdb"): [0.85, 0.86, None],    # mean 0.855 -> best on RAF-DB, n=2/3
    ("dan", "fer2013"): [0.70, 0.71, 0.75],     # mean 0.720 -> best on FER2013
    ("poster", "fer2013"): [None, None, None],  # no successful run: em dash
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows(names: dict[str, str] | None = None, error_class: str = "RuntimeError") -> list[dict[str, str]]:
    names = names or {}
    rows = []
    for (model, dataset), values in ACCURACY.items():
        for k, acc in enumerate(values):
            done = acc is not None
            rows.append({
                "model": names.get(model, model), "dataset": dataset, "protocol": PROTOCOL, "iteration": str(k),
                "status": "done" if done else "failed",
                "accuracy": f"{acc}" if done else "",
                "balanced_accuracy": f"{acc - 0.1:.4f}" if done else "",
                "macro_f1": f"{acc - 0.2:.4f}" if done else "",
                "n_train": "60", "n_val": "20", "n_test": "20", "best_epoch": "3" if done else "",
                "epochs_run": "5" if done else "", "wall_s": "1.5",
                "pretrained": "resnet18_msceleb.pth (122/122)" if model == "dan" else "none",
                "split_hash": f"{dataset}-{k}", "spec_hash": f"spec-{model}-{dataset}-{k}",
                "error_class": "" if done else error_class,
                "error_message": "" if done else "CUDA out of memory <script>",
                "git_commit": "abc1234", "run_dir": f"results/runs/{model}/{dataset}/{PROTOCOL}/iter-{k}",
            })
    return rows


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def summary(tmp_path: Path) -> Path:
    return _write(tmp_path / "summary.csv", _rows())


def _cell(agg, dataset: str, model: str):
    row = agg[(agg["dataset"] == dataset) & (agg["model"] == model)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.mark.parametrize("ddof, dan_raf_std, poster_raf_std, dan_fer_std",
                         [(1, 0.02, 0.0070710678118654, 0.0264575131106459),
                          (0, 0.0163299316185545, 0.005, 0.0216024689946929)])
def test_aggregate_mean_std_n(summary: Path, ddof: int, dan_raf_std: float, poster_raf_std: float,
                              dan_fer_std: float) -> None:
    agg = aggregate(read_summary(summary), "accuracy", ddof=ddof)
    dan_raf, poster_raf = _cell(agg, "rafdb", "dan"), _cell(agg, "rafdb", "poster")
    dan_fer, poster_fer = _cell(agg, "fer2013", "dan"), _cell(agg, "fer2013", "poster")
    assert dan_raf["mean"] == pytest.approx(0.82, abs=1e-12)
    assert dan_raf["std"] == pytest.approx(dan_raf_std, abs=1e-12)
    assert poster_raf["mean"] == pytest.approx(0.855, abs=1e-12)
    assert poster_raf["std"] == pytest.approx(poster_raf_std, abs=1e-12)
    assert dan_fer["mean"] == pytest.approx(0.72, abs=1e-12)
    assert dan_fer["std"] == pytest.approx(dan_fer_std, abs=1e-12)
    assert (poster_raf["n_done"], poster_raf["n_total"]) == (2, 3)
    assert poster_raf["failures"] == ["iter 2: RuntimeError"]
    assert (poster_fer["n_done"], poster_fer["n_total"]) == (0, 3)
    assert poster_fer["failures"] == [f"iter {k}: RuntimeError" for k in range(3)]
    assert not agg["split_mismatch"].any()


def test_markdown_cells_bold_n_footnote_em_dash(summary: Path) -> None:
    md = render_markdown(summary)
    acc = md.split("**Balanced accuracy**")[0]
    lines = {line.split("|")[1].strip(): line for line in acc.splitlines() if line.startswith("| ")}
    # Columns in paper order (POSTER before DAN), rows RAF-DB then FER2013.
    assert lines["Dataset"].split("|")[2:4] == [" POSTER ", " DAN "]
    raf = [c.strip() for c in lines["RAF-DB"].split("|")[2:4]]
    fer = [c.strip() for c in lines["FER2013"].split("|")[2:4]]
    # † = not significantly worse than the best: DAN vs POSTER on RAF-DB has 2 common iterations, far from significant.
    assert raf == ["**0.855 ± 0.007** † (n=2/3) [1]", "0.820 ± 0.020 † (n=3)"]
    assert fer == ["— (n=0/3, 3 failed) [2]", "**0.720 ± 0.026** (n=3)"]  # alone in its row: nothing to test
    assert "- [1] POSTER on RAF-DB: 1 of 3 runs without a result — iter 2: RuntimeError" in acc
    assert "- [2] POSTER on FER2013: 3 of 3 runs without a result" in acc
    assert "ddof=1" in acc and PROTOCOL in acc
    assert "0.720 ± 0.022" in render_markdown(summary, ddof=0)


def test_mixed_pretrained_column_warns(tmp_path: Path) -> None:
    rows = _rows()
    rows[1]["pretrained"] = "none"  # one DAN run on RAF-DB trained from scratch
    md = render_markdown(_write(tmp_path / "summary.csv", rows), metrics=("accuracy",))
    assert "Warning:** DAN mixes pretrained and from-scratch runs" in md
    assert "mixed: DAN" in md
    clean = render_markdown(_write(tmp_path / "clean.csv", _rows()), metrics=("accuracy",))
    assert "pretrained: DAN" in clean and "from scratch: POSTER" in clean and "Warning" not in clean


def test_render_writes_all_formats_and_plots(summary: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    paths = render(summary, out)
    names = sorted(p.name for p in paths)
    metrics = ("accuracy", "balanced_accuracy")
    tables = [f"{m}.{ext}" for m in metrics for ext in ("md", "html", "tex", "png")]
    # Pairwise matrices per metric and dataset; no CD diagram (2 models) and no reference comparison (no full runs).
    statistics = ["pairwise.csv", "ranks.csv"] + [f"pairwise_{m}_{d}.png" for m in metrics for d in ("rafdb", "fer2013")]
    assert names == sorted(tables + ["summary_stats.csv"] + statistics)
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    for metric in ("accuracy", "balanced_accuracy"):
        png = (out / f"{metric}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and b"IEND" in png[-12:]
    assert sorted(p.name for p in out.iterdir()) == names  # no temp files left behind

    html = (out / "accuracy.html").read_text()
    assert "<strong>0.855 &plusmn; 0.007</strong> <span class=\"mark\"" in html and "<small>n=2/3</small>" in html
    assert "&mdash; <small>n=0/3, 3 failed</small>" in html
    tex = (out / "accuracy.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert r"\textbf{0.855 $\pm$ 0.007}" in tex and r"\textbf{0.720 $\pm$ 0.026}" in tex
    assert r"\textbf{0.820" not in tex
    assert "--- {\\scriptsize ($n$=0/3, 3 failed)}\\textsuperscript{2}" in tex
    balanced = (out / "balanced_accuracy.md").read_text()
    assert "**0.755 ± 0.007** † (n=2/3)" in balanced  # accuracy - 0.1

    stats = pd.read_csv(out / "summary_stats.csv", keep_default_na=False)
    row = stats[(stats["metric"] == "accuracy") & (stats["dataset"] == "rafdb") & (stats["model"] == "poster")]
    assert row[["n_done", "n_total", "ddof"]].values.tolist() == [[2, 3, 1]]
    assert row["failures"].item() == "iter 2: RuntimeError"
    assert len(stats) == 8


def test_html_escapes_and_latex_escapes(tmp_path: Path) -> None:
    rows = _rows(names={"poster": "<script>alert(1)</script>"}, error_class="Bad<script>x</script>Error")
    for row in rows:
        if row["model"] == "dan":
            row["model"] = "my_net&co"
    out = tmp_path / "tables"
    render(_write(tmp_path / "summary.csv", rows), out, metrics=("accuracy",))
    html = (out / "accuracy.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Bad&lt;script&gt;x&lt;/script&gt;Error" in html
    assert "my_net&amp;co" in html
    tex = (out / "accuracy.tex").read_text()
    assert r"my\_net\&co" in tex and "my_net" not in tex
    assert r"\textless{}script\textgreater{}" in tex
    assert r"mean \ensuremath{\pm} std" in tex


def test_split_hash_mismatch_flagged(tmp_path: Path) -> None:
    rows = _rows()
    bad = next(r for r in rows if (r["model"], r["dataset"], r["iteration"]) == ("poster", "rafdb", "1"))
    bad["split_hash"] = "other-fold"
    summary = _write(tmp_path / "summary.csv", rows)
    df = read_summary(summary)
    mismatches = split_mismatches(df)
    assert mismatches[["dataset", "iteration"]].values.tolist() == [["rafdb", 1]]
    assert mismatches["hashes"].iloc[0] == {"dan": "rafdb-1", "poster": "other-fold"}
    agg = aggregate(df, "accuracy")
    assert _cell(agg, "rafdb", "dan")["split_mismatch"] and _cell(agg, "rafdb", "poster")["split_mismatch"]
    assert not _cell(agg, "fer2013", "dan")["split_mismatch"]
    md = render_markdown(summary, metrics=("accuracy",))
    assert "Split mismatch on RAF-DB iter 1" in md and "other-fold: POSTER" in md
    assert split_mismatches(read_summary(_write(tmp_path / "ok.csv", _rows()))).empty


def test_bad_input_errors_name_valid_choices(summary: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: accuracy, balanced_accuracy, macro_f1"):
        render_markdown(summary, metrics=("top5",))
    rows = _rows()
    rows[0]["status"] = ""
    with pytest.raises(ValueError, match="1 row.*empty status; valid: done, failed, timeout, killed, interrupted"):
        read_summary(_write(tmp_path / "bad.csv", rows))


def test_any_status_but_done_is_a_failure(tmp_path: Path) -> None:
    rows = _rows()
    rows[0].update(status="damaged", error_class="")  # a status added by a newer runner
    rows[1].update(status="exploded", error_class="")  # one this harness has never heard of
    agg = aggregate(read_summary(_write(tmp_path / "summary.csv", rows)), "accuracy")
    dan = _cell(agg, "rafdb", "dan")
    assert (dan["n_done"], dan["n_total"]) == (1, 3)
    assert dan["failures"] == ["iter 0: damaged", "iter 1: exploded"]


def test_harness_report_does_not_import_torch() -> None:
    code = "import sys, harness.report, harness.stats, harness.page, harness.significance; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_single_run_cell_and_not_run_cell(tmp_path: Path) -> None:
    rows = _rows()
    extra = dict(rows[0], dataset="ckplus", iteration="0", accuracy="0.9", split_hash="ck-0")
    timeout = dict(rows[0], dataset="ckplus", iteration="1", status="timeout", accuracy="", error_class="",
                   split_hash="")
    summary = _write(tmp_path / "summary.csv", rows + [extra, timeout])
    agg = aggregate(read_summary(summary), "accuracy")
    ck = _cell(agg, "ckplus", "dan")
    assert ck["mean"] == pytest.approx(0.9) and ck["std"] != ck["std"]  # NaN: one value has no ddof=1 spread
    assert ck["failures"] == ["iter 1: timeout"]
    md = render_markdown(summary, metrics=("accuracy",))
    ck_line = next(line for line in md.splitlines() if line.startswith("| CK+ |"))
    assert ck_line == "| CK+ | not run | **0.900 ± n/a** (n=1/2) [3] |"


# --- The report page: 3 models x 2 datasets x 10 iterations, DAN clearly better -------------------------------

PAGE_MODELS = {"dan": 0.06, "adadf": 0.0, "gsdnet": -0.003}  # offset from the dataset's base accuracy
RAF_CLASSES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _page_results(tmp_path: Path) -> Path:
    """A results folder holding only summary.csv and, for DAN on RAF-DB, predictions.csv of 9 of its 10 runs."""
    import numpy as np

    results = tmp_path / "results"
    rng = np.random.default_rng(7)
    rows = []
    for dataset, base in (("rafdb", 0.80), ("sfew", 0.50)):
        for k in range(10):
            fold = rng.normal(0, 0.01)  # a hard or easy fold moves every model together
            for model, offset in PAGE_MODELS.items():
                acc = base + offset + fold + rng.normal(0, 0.004)
                damaged = (model, dataset, k) == ("gsdnet", "sfew", 9)
                run_dir = f"runs/{model}/{dataset}/{PROTOCOL}/iter-{k}"
                rows.append({c: "" for c in COLUMNS} | {
                    "model": model, "dataset": dataset, "protocol": PROTOCOL, "iteration": str(k),
                    "status": "damaged" if damaged else "done",
                    "accuracy": "" if damaged else f"{acc:.4f}", "balanced_accuracy": "" if damaged else f"{acc - 0.08:.4f}",
                    "macro_f1": "" if damaged else f"{acc - 0.1:.4f}", "majority_rate": "0.386",
                    "n_train": "600", "n_val": "200", "n_test": "200", "wall_s": "812.5",
                    "pretrained": "resnet18_msceleb.pth (122/122)", "profile": "full", "split_hash": f"{dataset}-{k}",
                    "error_class": "DamagedRun" if damaged else "",
                    "error_message": "predictions.csv: 3 rows, expected 200" if damaged else "",
                    "git_commit": "abc1234", "image": f"fer-crossval/{model}:1.0", "run_dir": run_dir})
                if model == "dan" and dataset == "rafdb" and k != 3:
                    labels = rng.integers(0, 7, 200)
                    preds = np.where(rng.random(200) < acc, labels, (labels + 1) % 7)
                    probs = np.full((200, 7), 1 / 7)
                    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(200)], "pool_index": range(200),
                                          "label": labels, "pred": preds})
                    for c, name in enumerate(RAF_CLASSES):
                        frame[f"p_{name}"] = probs[:, c]
                    (results / run_dir).mkdir(parents=True)
                    frame.to_csv(results / run_dir / "predictions.csv", index=False)
    columns = COLUMNS[:8] + ["majority_rate"] + COLUMNS[8:] + ["profile", "image"]
    results.mkdir(exist_ok=True)
    with (results / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return results


def _build_page(results: Path) -> tuple[Path, Path]:
    """What `python -m harness report` does after collecting: one protocol's tables, then the page."""
    from harness.page import build_page

    out_dir = results / "tables" / PROTOCOL
    out_dir.mkdir(parents=True)
    (out_dir / "summary.csv").write_bytes((results / "summary.csv").read_bytes())
    render(out_dir / "summary.csv", out_dir, results=results)
    return out_dir, build_page(results, {PROTOCOL: out_dir})


def test_statistics_outputs_say_which_model_is_better(tmp_path: Path) -> None:
    results = _page_results(tmp_path)
    out_dir, page = _build_page(results)

    pairs = pd.read_csv(out_dir / "pairwise.csv")
    assert list(pairs.columns) == ["dataset", "metric", "model_a", "model_b", "n", "mean_diff", "ci_low", "ci_high",
                                   "t", "p_value", "p_holm"]
    acc = pairs[pairs["metric"] == "accuracy"].set_index(["dataset", "model_a", "model_b"])
    assert len(acc) == 6  # 3 pairs x 2 datasets
    for dataset in ("rafdb", "sfew"):
        for other in ("adadf", "gsdnet"):
            row = acc.loc[(dataset, "dan", other)]
            assert row["p_holm"] < 0.05 and row["ci_low"] > 0.04 and row["mean_diff"] == pytest.approx(0.06, abs=0.01)
        assert acc.loc[(dataset, "adadf", "gsdnet"), "p_holm"] > 0.05  # 0.003 apart: not a difference
    assert acc.loc[("sfew", "dan", "gsdnet"), "n"] == 9 and acc.loc[("rafdb", "dan", "gsdnet"), "n"] == 10

    ranks = pd.read_csv(out_dir / "ranks.csv")
    top = ranks[ranks["metric"] == "accuracy"].iloc[0]
    assert (top["model"], top["average_rank"], top["n_datasets"]) == ("dan", 1.0, 2)
    assert top["friedman_statistic"] == pytest.approx(4.0)  # ranks 1, 2, 3 on both datasets
    assert (out_dir / "cd_accuracy.png").read_bytes().startswith(PNG_MAGIC)

    md = (out_dir / "accuracy.md").read_text()
    raf = next(line for line in md.splitlines() if line.startswith("| RAF-DB |")).split("|")[2:6]
    assert "†" in raf[0] and "†" not in raf[1] and "†" not in raf[2] and raf[3].strip() == "0.386"
    assert "† = the best or not significantly worse than it" in md and "ddof=1" in md

    confusion = pd.read_csv(out_dir / "confusion" / "dan__rafdb.csv")
    assert list(confusion["true_class"]) == RAF_CLASSES and confusion["n_images"].sum() == 9 * 200
    assert confusion.filter(like="pred_").sum(axis=1).tolist() == pytest.approx([1.0] * 7)  # rows normalised
    assert confusion["recall"].mean() == pytest.approx(0.86, abs=0.04)  # the predictions were drawn at ~0.86

    html = page.read_text()
    assert "Friedman χ² = 4.000" in html and "critical-difference diagram" in html
    assert "predictions missing: iter 3: no predictions.csv" in html  # noted, not fatal
    assert "60 run(s): 59 done, 1 failed" in html
    assert '<tr class="failed">' in html and "DamagedRun" in html and "fer-crossval/gsdnet:1.0" in html
    # The reference table beside ours, with the reason the DAN RAF-DB cell may differ.
    assert "0.867 ± 0.007 (ddof=0)" in html and "only above 0.85 validation accuracy" in html


def _chromium() -> str:
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        message = "headless Chromium is needed to check the report page: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_report_page_in_a_browser(tmp_path: Path) -> None:
    """Open the page as a person would: every image decodes, every link lands, and it renders."""
    import json
    import re
    from html.parser import HTMLParser

    chromium = _chromium()
    _, page = _build_page(_page_results(tmp_path))
    html = page.read_text()

    class Refs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.ids, self.links, self.images = set(), [], []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "id" in attrs:
                self.ids.add(attrs["id"])
            if tag == "a" and "href" in attrs:
                self.links.append(attrs["href"])
            if tag == "img":
                self.images.append(attrs.get("src", ""))

    refs = Refs()
    refs.feed(html)
    assert len(refs.images) >= 10 and len(refs.links) >= 3
    for href in refs.links:
        target = href[1:] if href.startswith("#") else None
        assert (target in refs.ids) if target is not None else (page.parent / href).is_file(), f"broken link {href}"

    # A copy of the page with a check that runs after load; --dump-dom prints the DOM it leaves.
    check = page.with_name("check.html")
    check.write_text(html.replace("</body>", """<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"));
  const out = document.createElement("pre"); out.id = "image-check";
  out.textContent = JSON.stringify({images: document.images.length, broken: broken});
  document.body.appendChild(out);
});
</script></body>"""))

    def browse(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120)

    dom = browse("--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom.stdout)
    assert found, f"no check result in the DOM; chromium said: {dom.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result == {"images": len(refs.images), "broken": []}

    shot = tmp_path / "report.png"
    browse("--window-size=1400,2400", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 50_000  # a page of text and figures, not a blank one


def test_reference_data_and_notes_match_the_readme_table() -> None:
    """The reference numbers are the published ones, and every per-cell note matches README's coded table."""
    from harness.reference import load_notes, load_reference

    ref = load_reference().set_index(["metric", "dataset", "model"])
    assert len(ref) == 2 * 6 * 7
    assert ref.loc[("accuracy", "rafdb", "lnsunet"), ["mean", "std", "n", "ddof"]].tolist() == [0.889, 0.006, 10, 1]
    assert ref.loc[("accuracy", "sfew", "adadf"), ["mean", "std", "ddof"]].tolist() == [0.574, 0.003, 0]
    assert ref.loc[("balanced_accuracy", "expw", "adadf"), "mean"] == 0.447
    assert ref.loc[("balanced_accuracy", "ckplus", "posterpp"), "mean"] == 0.944

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    lines = readme[readme.index("| dataset | POSTER++ |"):].splitlines()
    models = ["posterpp", "gsdnet", "lnsunet", "poster", "ddamfn", "adadf", "dan"]
    datasets = {"CK+": "ckplus", "SFEW2.0": "sfew", "RAF-DB": "rafdb", "FERPlus": "ferplus", "FER2013": "fer2013",
                "ExpW": "expw"}
    expected = set()
    for line in lines[2:8]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for model, cell in zip(models, cells[1:]):
            # A is our own rule and g (accumulation, AMP, clipping) is replicated here: neither is a difference.
            expected |= {(model, datasets[cells[0]], code) for code in cell.split() if code not in ("A", "g")}
    notes = load_notes()
    coded = {(r.model, r.dataset, r.code) for r in notes.itertuples() if r.code not in ("bug", "bgr")}
    assert coded == expected


def test_page_with_runs_in_progress_and_a_summary_without_split_sizes(tmp_path: Path) -> None:
    from harness.page import build_page

    results = _page_results(tmp_path)
    df = pd.read_csv(results / "summary.csv", dtype=str, keep_default_na=False)
    running = df.assign(status="running", protocol="other-sweep")  # another sweep's runs, none finished
    pd.concat([df.drop(columns=["n_train"]), running]).to_csv(results / "summary.csv", index=False)
    dirs = {}
    for proto, sub in pd.read_csv(results / "summary.csv", dtype=str, keep_default_na=False).groupby("protocol"):
        dirs[proto] = results / "tables" / proto
        dirs[proto].mkdir(parents=True)
        sub.to_csv(dirs[proto] / "summary.csv", index=False)
        render(dirs[proto] / "summary.csv", dirs[proto], metrics=("accuracy",), results=results)
    assert not (dirs["other-sweep"] / "accuracy.md").exists()  # nothing finished: no table yet
    assert pd.read_csv(dirs[PROTOCOL] / "pairwise.csv").empty  # no n_train: no test, and no crash
    html = build_page(results, dirs, metrics=("accuracy",)).read_text()
    assert "120 run(s): 59 done, 1 failed (any status but done), 60 in progress" in html
    assert 'id="other-sweep"' not in html and f'id="{PROTOCOL}"' in html
    assert "dan vs adadf on rafdb (accuracy): summary.csv has no `n_train`" in html
