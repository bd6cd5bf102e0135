"""`python -m harness profile` end to end on the test-only tiny model: the CSV and the three tables."""
from __future__ import annotations

import csv

from harness.profile import COLUMNS


def test_harness_profile_writes_csv_and_tables(harness) -> None:
    args = ("profile", "--model", "tiny", "--device", "cpu", "--threads", "1", "--batch", "4", "--train-batch", "4",
            "--warmup", "1", "--repeats", "2", "--set", "data.image_size=32")
    proc = harness(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    folder = harness.results / "profile"
    rows = list(csv.DictReader(open(folder / "cpu.csv", encoding="utf-8")))
    assert list(rows[0]) == COLUMNS and len(rows) == 1
    row = rows[0]
    from tests.fixtures.models.tiny.adapter import TinyTask

    task = TinyTask(7, 16, "none", 0, None)  # the width of its config.yaml
    assert float(row["params_m"]) == round(sum(p.numel() for p in task.parameters()) / 1e6, 4)
    # 4 convolutions and a linear layer at 32 px, counted by hand: the counter sees every layer.
    hand = (32 * 32 * 3 * 16 + 16 * 16 * 16 * 32 + 8 * 8 * 32 * 64 + 4 * 4 * 64 * 128) * 9 + 128 * 7
    assert abs(float(row["gmacs"]) * 1e9 - hand) < 1e5
    assert row["image_size"] == "32" and row["device"] == "cpu" and row["threads"] == "1" and not row["error"]
    for key in ("gmacs", "latency_ms", "infer_images_per_s", "train_images_per_s", "peak_memory_mb"):
        assert float(row[key]) > 0, key
    for fmt in ("md", "html", "tex"):
        assert "tiny" in (folder / f"profile_cpu.{fmt}").read_text()


def test_report_shows_profile_and_accuracy_against_cost(harness) -> None:
    run = harness("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1")
    assert run.returncode == 0, run.stdout[-2000:]
    proc = harness("profile", "--model", "tiny", "--device", "cpu", "--threads", "1", "--batch", "4",
                   "--train-batch", "4", "--warmup", "0", "--repeats", "1", "--set", "data.image_size=32")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert harness("report").returncode == 0
    page = (harness.results / "report" / "index.html").read_text()
    assert 'id="efficiency"' in page and "GMACs" in page and "<td>tiny</td>" in page
    pngs = sorted(p.name for p in (harness.results / "report").glob("efficiency_*_cpu_*.png"))
    assert [p.rsplit("_", 1)[1] for p in pngs] == ["gmacs.png", "throughput.png"]
    assert all((harness.results / "report" / p).stat().st_size > 1000 for p in pngs)


def test_profile_and_predict_stay_torch_free() -> None:
    import subprocess
    import sys

    from tests.harness.conftest import REPO

    code = "import sys, harness.cli, harness.profile, harness.predict; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
