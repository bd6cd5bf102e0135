"""SLURM runner: the sweep goes to the cluster as one submitit job array (one task per run) and the
harness returns at once; the cluster runs it whether or not the login session stays.

Each task runs `python -m common.run SPEC` on a compute node. The run itself writes status.json as
anywhere else; what only the cluster knows (the job id, when it was submitted, how the job ended)
is kept beside it in slurm.json and read back from SLURM's accounting (sacct) by `refresh`, which
`harness run --runner slurm` and `harness status` call first. So running the same command again
submits exactly the runs that need it: a run whose job is pending or running is left alone
whatever its status.json says (a requeued job), a finished one is collected, and one whose job
ended without a result (cancelled, timed out, preempted, out of memory, node failure) is recorded
as failed with that SLURM state and submitted again.

Preemption and time limits: submitit asks SLURM for USR2 ahead of the limit; the task stops its
run (which keeps the last.pt of its last finished epoch) and submitit requeues the job, up to
`max_requeue` times, after which the job is left to end at its limit (TIMEOUT). A requeued or
preempted job starts the same run again, which continues from last.pt (common/train.py).
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError
from submitit.helpers import Checkpointable, DelayedSubmission

from common.config import ROOT
from common.errors import ConfigError
from common.io import atomic_write_json, read_json
from common.runlock import EXIT_LOCKED, RunLock, RunLocked
from common.status import RunStatus
from harness.plan import Planned, prepare
from harness.runners.supervisor import gpu_env

logger = logging.getLogger(__name__)
SLURM_FILE = "slurm.json"
# sacct states of a job that may still produce a result: its run is not submitted again.
WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "CONFIGURING")
ACTIVE = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING")
# Paths that are local to each machine on a cluster: a results folder there is invisible to the nodes.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")
STOP_GRACE_S = 30  # seconds a run gets to record `interrupted` before the task kills it


class SlurmError(RuntimeError):
    """Something the user can fix about the cluster set-up (one line: what, and what to do)."""


def label(p: Planned) -> str:
    return f"{p.spec.model}/{p.spec.dataset}/iter-{p.spec.iteration}"


# ---- on the compute node -------------------------------------------------------------------------

def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class RunTask(Checkpointable):
    """One task of the array: `python -m common.run SPEC` in the repository, run as a child process
    (its own interpreter, so a preemption signal handled here never lands inside training), optionally
    behind a prefix such as `apptainer exec --nv ... dan.sif` (the model's image), which brings its python."""

    def __init__(self, spec_path: str, python: str, gpus: int = 0, max_requeue: int = 3, requeued: int = 0,
                 prefix: list[str] | None = None) -> None:
        self.spec_path, self.python, self.gpus = spec_path, python, gpus
        self.max_requeue, self.requeued, self.prefix = max_requeue, requeued, list(prefix or [])
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1")
        env.pop("FER_PARENT_PID", None)  # a cluster run is detached: no harness process to watch
        env.setdefault("OMP_NUM_THREADS", os.environ.get("SLURM_CPUS_PER_TASK", "1"))
        if self.gpus:  # SLURM gives the job its own GPUs
            env.update(gpu_env(share=1))
        # SLURM signals every process of the job step: the run ignores USR2 (the signal ahead of the time
        # limit, SIGUSR2's default action would kill it mid-epoch); this task decides what to do (checkpoint).
        self._proc = subprocess.Popen([*self.prefix, self.python, "-m", "common.run", self.spec_path], cwd=ROOT,
                                      env=env, preexec_fn=_ignore_usr2)
        try:
            code = self._wait()
        except UncompletedJobError:
            # No requeue left (submitit raises this from its USR2 handler): the run goes on until
            # SLURM stops the job at its limit, so accounting records it as TIMEOUT, not FAILED.
            print("no requeue left: the run continues until the time limit", flush=True)
            code = self._wait()
        if code == EXIT_LOCKED:
            raise RuntimeError(f"{Path(self.spec_path).parent} is locked by another process (see run.lock); "
                               "this task did not run")
        if code != 0:
            raise RuntimeError(f"python -m common.run exited with {code}; see run.log and status.json in "
                               f"{Path(self.spec_path).parent}")
        return code

    def _wait(self) -> int:
        """Polled, not a blocking Popen.wait(): submitit's signal handler (checkpoint) runs inside this
        loop and waits for the run itself, and Popen.wait holds a lock that is not re-entrant."""
        assert self._proc is not None
        while (code := self._proc.poll()) is None:
            time.sleep(0.5)
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Signalled ahead of the time limit (or of a preemption): stop the run (its last.pt stays) and
        hand submitit a fresh task for the requeued job, which continues from last.pt. With no requeue
        left, None: the run is not stopped and the job ends at its limit (TIMEOUT in accounting)."""
        if self.requeued >= self.max_requeue:
            return None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the run records `interrupted` and releases its folder
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_GRACE_S)
        return DelayedSubmission(RunTask(self.spec_path, self.python, self.gpus, self.max_requeue, self.requeued + 1,
                                         self.prefix))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_proc"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _proc=None)


# ---- checks before submitting ---------------------------------------------------------------------

def _slurm_cmd(*args: str, timeout: float = 60) -> str:
    exe = shutil.which(args[0])
    if exe is None:
        raise SlurmError(f"no `{args[0]}` on PATH: the SLURM runner submits from a cluster's login node "
                         "(module load slurm?), or start a test cluster with `make slurm-up`")
    proc = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SlurmError(f"`{' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout


def check_cluster(partition: str | None, results: Path) -> None:
    """sbatch is there, the partition exists, and the results folder is one the nodes can see."""
    if shutil.which("sbatch") is None:
        _slurm_cmd("sbatch")  # raises the one-line error
    lines = _slurm_cmd("sinfo", "-h", "-o", "%R %N").split()
    parts = dict(zip(lines[::2], lines[1::2]))
    if partition is not None and partition not in parts:
        raise SlurmError(f"unknown partition {partition!r}; partitions of this cluster: {', '.join(sorted(parts))}")
    nodes = _slurm_cmd("sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else [])).split()
    here = socket.gethostname().split(".")[0]
    if set(nodes) - {here}:  # jobs may land on another machine: results must live on a shared filesystem
        resolved = Path(results).resolve()
        for local in NODE_LOCAL + ((os.environ["TMPDIR"],) if os.environ.get("TMPDIR") else ()):
            if resolved.is_relative_to(local):
                raise SlurmError(f"results folder {resolved} is under {local}, which is local to each machine: "
                                 "compute nodes cannot see it; use a folder on a shared filesystem (RESULTS=...)")


def minutes(value: str) -> int:
    """SLURM time syntax (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) -> whole minutes (rounded up)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not m:
        raise ConfigError(f"SLURM_TIME / --slurm-time={value!r} is not a SLURM time; e.g. 08:00:00, 90, 1-12:00:00")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        secs = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        secs = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        secs = a * 60 + b
    else:  # MM
        secs = a * 60
    if secs <= 0:
        raise ConfigError(f"SLURM_TIME / --slurm-time={value!r} must be more than 0, e.g. 08:00:00")
    return -(-secs // 60)


def sbatch_options(text: str | None) -> dict[str, Any]:
    """SLURM_ARGS="--qos=high --account=lab --exclusive" -> {'qos': 'high', 'account': 'lab', 'exclusive': True}."""
    out: dict[str, Any] = {}
    for word in shlex.split(text or ""):
        m = re.fullmatch(r"--([a-z][a-z0-9-]*)(?:=(.+))?", word)
        if not m:
            raise ConfigError(f"SLURM_ARGS / --slurm-args: {word!r} is not an sbatch option of the form --name=value "
                             "or --flag (e.g. SLURM_ARGS=\"--qos=high --account=mylab\")")
        out[m.group(1).replace("-", "_")] = m.group(2) if m.group(2) is not None else True
    return out


# ---- what SLURM says about submitted runs ---------------------------------------------------------

def sacct_states(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """{job id: {state, exit_code, elapsed}} from SLURM's accounting, one row per array task."""
    if not job_ids:
        return {}
    arrays = sorted({j.split("_")[0] for j in job_ids})
    return parse_sacct(_slurm_cmd("sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,Elapsed",
                                  "-j", ",".join(arrays)))


def parse_sacct(out: str) -> dict[str, dict[str, str]]:
    """`sacct -n -P -X -o JobID,State,ExitCode,Elapsed` -> {task id: {state, exit_code, elapsed}}."""
    states, pending = {}, {}
    for line in out.splitlines():
        if line.count("|") != 3:
            continue
        job, state, code, elapsed = line.split("|")
        row = {"state": state.split()[0], "exit_code": code, "elapsed": elapsed}  # "CANCELLED by 0"
        tasks = array_tasks(job)
        # A task's own row wins over the array's row of tasks not started yet: a pending task that is
        # cancelled gets its own CANCELLED row while the array row may still list it as PENDING for a while.
        for task in tasks:
            (states if tasks == [job] else pending)[task] = row
    return {**pending, **states}


def array_tasks(job: str) -> list[str]:
    """sacct's JobID -> task ids: '12_3' -> ['12_3']; the tasks of an array not started yet are one row,
    '12_[0-2,5%4]' -> ['12_0', '12_1', '12_2', '12_5'] (after '%' is the limit of tasks at once)."""
    m = re.fullmatch(r"(\d+)_\[([^\]%]*)(?:%\d+)?\]", job)
    if not m:
        return [job]
    out = []
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{k}" for k in range(int(lo), int(hi or lo) + 1)]
    return out


def refresh(planned: list[Planned]) -> None:
    """Bring each planned run that was submitted to SLURM up to date with the cluster, in place:
    a job still pending or running makes its run `queued` / `running` (never submitted again); a job
    that ended without the run recording a result is written into status.json as `failed` with
    the SLURM state as its error class (TIMEOUT, PREEMPTED, OUT_OF_MEMORY, NODE_FAIL, CANCELLED...)."""
    submitted = {}
    for p in planned:
        if p.state == RunStatus.STALE or not (p.run_dir / SLURM_FILE).is_file():
            continue
        try:
            info = read_json(p.run_dir / SLURM_FILE)
        except (OSError, ValueError):
            continue
        if info.get("spec_hash") == p.spec.hash and p.state != RunStatus.DONE:
            submitted[info["job_id"]] = (p, info)
    if not submitted:
        return
    states = sacct_states(list(submitted))
    for job_id, (p, info) in submitted.items():
        acct = states.get(job_id)
        if acct is None:  # accounting has not seen it yet (just submitted): still waiting
            acct = {"state": "PENDING", "exit_code": "", "elapsed": ""}
        state = acct["state"]
        info.update(state=state, checked=time.time())
        if state in WAITING:
            p.state, p.note = RunStatus.QUEUED, f"SLURM job {job_id} {state.lower()} for {_ago(info['submitted'])}"
        elif state in ACTIVE:
            p.state, p.note = RunStatus.RUNNING, f"SLURM job {job_id} running"
        else:
            _record_end(p, job_id, info, acct)


def _record_end(p: Planned, job_id: str, info: dict[str, Any], acct: dict[str, str]) -> None:
    """The job is over. A run that wrote its own outcome keeps it (with the SLURM state beside it);
    one that could not (killed, cancelled, out of time) is recorded as failed with the SLURM state."""
    state = acct["state"]
    try:
        lock = RunLock(p.run_dir).acquire(role="harness")
    except RunLocked:  # the run (or another harness) holds the folder: it is not over after all
        p.state, p.note = RunStatus.RUNNING, f"SLURM job {job_id} {state.lower()}, folder in use"
        return
    with lock:
        try:
            status = read_json(p.run_dir / "status.json")
        except (OSError, ValueError):
            status = {}
        if status.get("status") == RunStatus.DONE:  # finished between the plan and now: a result, whatever the job did next
            p.state, p.note = RunStatus.DONE, ""
            return
        if status.get("slurm_state") != state:
            if status.get("status") != RunStatus.FAILED or state != "FAILED":
                status.update(status=RunStatus.FAILED, error_class=state,
                              error_message=f"SLURM job {job_id} ended {state} (exit code {acct['exit_code']}, "
                                            f"ran {acct['elapsed']}); log: {info.get('log', '?')}")
            status.update(slurm_state=state, slurm_job_id=job_id, spec_hash=p.spec.hash)
            atomic_write_json(p.run_dir / "status.json", status)
            atomic_write_json(p.run_dir / SLURM_FILE, info)
        p.state, p.note = RunStatus.FAILED, f"{status.get('error_class')}: {status.get('error_message', '')}"


def _ago(since: float) -> str:
    s = int(time.time() - since)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ---- submitting -----------------------------------------------------------------------------------

def run_slurm(planned: list[Planned], jobs: int | None = None, timeout: float | None = None,
              gpus: list[str] | None = None, echo: bool = True, partition: str | None = None,
              slurm_time: str = "08:00:00",
              gpus_per_run: int = 0, slurm_args: str | None = None, max_requeue: int = 3,
              results: Path | None = None, launch_prefix: str | None = None) -> list[dict]:
    """Submit every run of the plan that needs it as one job array and return at once (detached):
    status.json says `queued` with the job id. `jobs` caps how many tasks of the array run at once."""
    if gpus:
        raise ConfigError("GPUS=... picks local devices; on a cluster ask for them per run with GPUS_PER_RUN=N")
    if timeout is not None:
        raise ConfigError("TIMEOUT applies to local and container runs; on a cluster give SLURM_TIME=HH:MM:SS")
    limit = minutes(slurm_time)
    extra = sbatch_options(slurm_args)
    results = Path(results if results is not None else "results")
    check_cluster(partition, results)
    refresh(planned)
    for p in planned:
        if p.state in (RunStatus.QUEUED, RunStatus.RUNNING):
            logger.info(f"{p.state:8s} {label(p)}: {p.note}")
    todo = [p for p in planned if p.todo]
    if not todo:
        logger.info("nothing to submit: every run is done, queued or running (make status shows them)")
        return []
    prepared: list[tuple[Planned, Path]] = []
    for p in todo:
        try:
            prepared.append((p, prepare(p)))
        except RunLocked as e:
            logger.info(f"skipping {label(p)}: {e}")
    if not prepared:
        return []
    folder = (results / "slurm").resolve()
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=max_requeue)
    # A CPU per torch thread, at least one more than the DataLoader workers (the run's own process).
    cpus = max(max(int(p.spec.config["train"]["threads"] or 1), 1 + int(p.spec.config["data"]["num_workers"]))
               for p, _ in prepared)
    params: dict[str, Any] = dict(time=limit, cpus_per_task=cpus, array_parallelism=jobs or len(prepared),
                                  job_name="fer-crossval", stderr_to_stdout=True,
                                  additional_parameters={"hold": True, "chdir": str(ROOT), **extra})
    if max_requeue == 0:
        # Nothing to prepare for at the limit: the signal submitit asks for ahead of it becomes a harmless
        # SIGCONT. (SLURM may send it up to a minute early; on a short limit that can be the first second
        # of the job, before submitit's handler exists, and USR2 would end the job as FAILED.)
        params["additional_parameters"]["signal"] = "CONT@90"
    if partition:
        params["partition"] = partition
    if gpus_per_run:
        params["gpus_per_node"] = gpus_per_run
    executor.update_parameters(**params)
    prefix = shlex.split(launch_prefix) if launch_prefix else []
    python = "python" if prefix else sys.executable  # a container's own python, else this environment's
    try:
        with executor.batch():
            pending = [executor.submit(RunTask(str(spec_path.resolve()), python, gpus_per_run, max_requeue, 0, prefix))
                       for _, spec_path in prepared]
    except (FailedJobError, subprocess.CalledProcessError) as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise SlurmError(f"sbatch refused the job array: {lines[-1] if lines else e}") from None
    # Submitted on hold, so no task starts before its status says `queued` with its job id.
    now = time.time()
    records = []
    for (p, _), job in zip(prepared, pending):
        log = str(folder / job.job_id / f"{job.job_id}_0_log.out")
        info = {"job_id": job.job_id, "submitted": now, "partition": partition, "time_limit_min": limit,
                "spec_hash": p.spec.hash, "log": log, "state": "PENDING"}
        atomic_write_json(p.run_dir / SLURM_FILE, info)
        status = {"status": RunStatus.QUEUED, "spec_hash": p.spec.hash, "slurm_job_id": job.job_id, "submitted": now,
                  "host": socket.gethostname(), "partition": partition}
        atomic_write_json(p.run_dir / "status.json", status)
        records.append({"run": label(p), **info})
    array_id = pending[0].job_id.split("_")[0]
    _slurm_cmd("scontrol", "release", array_id)
    logger.info(f"submitted {len(records)} run(s) as SLURM job array {array_id}"
                + (f" on partition {partition}" if partition else "") + f" ({limit} min per run); "
                "`make status` shows them, `make run` again collects the finished ones")
    if echo:
        for r in records:
            logger.info(f"  {r['job_id']:>12s}  {r['run']}")
    return records

