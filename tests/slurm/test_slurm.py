"""The SLURM runner on a real cluster (tests/slurm/conftest.py): a two-iteration synthetic sweep submitted
as a job array gives the local runner's results; a cancelled task is recorded as CANCELLED and the next
`harness run` resubmits only that one; a task requeued while running continues from its last.pt; a task
that exceeds its time limit is recorded as TIMEOUT. `make test-slurm` runs these (marker `slurm`)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import read_json
from tests.slurm.conftest import wait_for

pytestmark = pytest.mark.slurm

# Six short epochs: long enough to requeue a task between two of them.
EPOCHS = ("train.epochs=6", "train.t_max=6")


def _job(h, k: int) -> str:
    return read_json(h.run_dir(k) / "slurm.json")["job_id"]


def _done(h, k: int) -> bool:
    return h.status(k).get("status") == "done"


def test_sweep_on_slurm_matches_local_with_a_cancelled_and_a_requeued_task(make_harness) -> None:
    local = make_harness("local")
    out = local("run", "--iterations", "2", "--jobs", "2", sets=EPOCHS)
    assert out.returncode == 0, out.stdout[-3000:]

    h = make_harness("slurm")
    out = h("run", "--runner", "slurm", "--iterations", "2", sets=EPOCHS)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "submitted 2 run(s) as SLURM job array" in out.stdout
    first = {k: _job(h, k) for k in (0, 1)}
    assert first[0].split("_")[0] == first[1].split("_")[0] and first[0] != first[1]  # one array, two tasks
    for k in (0, 1):  # recorded before the array was released: never overwritten by a run that started first
        assert h.status(k)["slurm_job_id"] == first[k] and h.status(k)["status"] in ("queued", "running", "done")

    subprocess.run(["scancel", first[1]], check=True)
    # Task 0 is requeued once it has finished an epoch (its last.pt is there) and before it is done.
    wait_for(lambda: (h.run_dir(0) / "last.pt").is_file() or _done(h, 0), 120, "task 0 to finish an epoch")
    assert not _done(h, 0), "the run finished before it could be requeued; make its epochs longer"
    subprocess.run(["scontrol", "requeue", first[0]], check=True)

    # SLURM's accounting takes a moment to record the cancel; `status` reports what it records.
    def cancelled() -> bool:
        status = h("status", "--iterations", "2", sets=EPOCHS).stdout
        return re.search(r"^failed .* iter 1 .*CANCELLED", status, re.M) is not None

    wait_for(cancelled, 60, "the cancel of task 1 to reach SLURM's accounting", every=2)
    status = h("status", "--iterations", "2", sets=EPOCHS).stdout
    assert re.search(r"^(queued|running|done) .* iter 0 ", status, re.M), status  # requeued: never a failure
    assert h.status(1)["error_class"] == "CANCELLED" and h.status(1)["slurm_state"] == "CANCELLED"

    again = h("run", "--runner", "slurm", "--iterations", "2", sets=EPOCHS)
    assert "submitted 1 run(s)" in again.stdout, again.stdout[-3000:]
    assert _job(h, 0) == first[0] and _job(h, 1) != first[1]  # only the cancelled task went again
    (aside,) = (h.run_dir(1).parent / "superseded").glob("iter-1-failed-*")
    assert read_json(aside / "status.json")["error_class"] == "CANCELLED"

    wait_for(lambda: _done(h, 0) and _done(h, 1), 300, "both runs to finish", every=1)
    assert h.status(0)["resumes"] >= 1
    assert re.search(r"resuming from last\.pt after epoch [1-5]/6", (h.run_dir(0) / "run.log").read_text())
    for k in (0, 1):
        assert not (h.run_dir(k) / "last.pt").exists()
        assert (h.run_dir(k) / "predictions.csv").read_text() == (local.run_dir(k) / "predictions.csv").read_text()

    final = h("run", "--runner", "slurm", "--iterations", "2", sets=EPOCHS)
    assert final.returncode == 0 and "nothing to submit" in final.stdout
    assert "| synthetic" in final.stdout and "(n=2)" in final.stdout  # collected into the table


def test_a_task_past_its_time_limit_is_recorded_as_timeout(make_harness) -> None:
    h = make_harness("timeout")
    # The tiny model sleeps in its second epoch (FER_TINY_FAIL, not part of the spec); one minute and no
    # requeue: SLURM ends the job at its limit.
    out = h("run", "--runner", "slurm", "--iterations", "1", "--slurm-time", "1", "--max-requeue", "0",
            FER_TINY_FAIL="sleep:0")
    assert "submitted 1 run(s)" in out.stdout, out.stdout[-3000:]
    job = _job(h, 0)
    wait_for(lambda: "TIMEOUT" in h("status", "--iterations", "1").stdout, 240, "the job to time out", every=5)
    status = h.status(0)
    assert status["status"] == "failed" and status["error_class"] == "TIMEOUT" and status["slurm_state"] == "TIMEOUT"
    assert f"SLURM job {job} ended TIMEOUT" in status["error_message"]
    assert (h.run_dir(0) / "last.pt").is_file()  # its epoch 1 is kept for the next attempt


def test_an_unknown_partition_is_one_line_naming_the_partitions(make_harness) -> None:
    h = make_harness("partition")
    out = h("run", "--runner", "slurm", "--iterations", "1", "--partition", "nope", exits=(2,))
    assert out.returncode == 2 and out.stdout.strip().splitlines() == [
        "error: unknown partition 'nope'; partitions of this cluster: debug"]
    assert not (h.results / "runs").exists()  # nothing planned, prepared or submitted


def test_launch_prefix_wraps_the_run_on_the_node(make_harness) -> None:
    # What `LAUNCH="apptainer exec ... dan.sif"` does on a cluster, with a prefix every node has: the run
    # starts behind it (and takes the prefix's python) and records what the prefix set.
    h = make_harness("launch")
    out = h("run", "--runner", "slurm", "--iterations", "1", "--launch-prefix",
            f"env FER_GIT_COMMIT=through-the-prefix PATH={Path(sys.executable).parent}:/usr/bin:/bin")
    assert "submitted 1 run(s)" in out.stdout, out.stdout[-3000:]
    wait_for(lambda: _done(h, 0) or h.status(0).get("status") == "failed", 180, "the run to finish", every=1)
    assert h.status(0)["status"] == "done" and h.status(0)["git_commit"] == "through-the-prefix"
