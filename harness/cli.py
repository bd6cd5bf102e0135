"""python -m harness {list,plan,run,collect,report,regress}: the suite's command line (the Makefile calls it)."""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

from common import config, logs
from common.datasets import dataset_names
from common.errors import ConfigError, FERUserError, MissingPathError, NotWritableError
from common.status import IN_PROGRESS, LIVE, RunStatus
from harness.bench import register as register_bench
from harness.collect import collect
from harness.plan import plan
from harness.predict import register as register_predict
from harness.profile import register as register_profile
from harness.regress import register as register_regress
from harness.runners import RUNNERS, get_runner
from harness.runners.slurm import SlurmError, check_cluster

logger = logging.getLogger(__name__)


def _add_selection(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", default="adadf", help="model name(s), comma-separated, or 'all' (default: adadf)")
    ap.add_argument("--dataset", default="synthetic", help="dataset name(s), comma-separated, or 'all' (default: synthetic)")
    ap.add_argument("--profile", default=None,
                    help="profile from common/profiles.yaml: full (reference protocol) or quick "
                         "(default: quick when every dataset is synthetic, else full)")
    ap.add_argument("--iterations", default=None, help="N (iterations 0..N-1) or a list '0,3,7'; default: the profile's")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. train.lr=1e-4 train.epochs=30 (YAML values)")
    ap.add_argument("--tag", default=None, help="name a variant: its runs go to their own protocol folder")
    ap.add_argument("--data-root", default=os.environ.get("FER_DATA_ROOT"),
                    help="folder holding the datasets (default: $FER_DATA_ROOT, else data/)")
    ap.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")


def _check_results(results: Path, write: bool) -> None:
    """A results folder that cannot be used is one line, before anything runs: `run` needs to write
    it (created if absent), `report`/`collect` need it to exist (a mistyped path is not a new folder)."""
    blocker = next((p for p in (results, *results.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"results folder {results}: {blocker} is a file, not a folder")
    if not write:
        if not results.is_dir():
            raise MissingPathError(f"results folder {results} does not exist (mistyped RESULTS=?)")
        return
    try:  # a real write, not os.access: root passes access checks on read-only mounts
        results.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=results).close()
    except OSError as e:
        raise NotWritableError(f"results folder {results} is not writable ({e.strerror or e}); "
                              "choose another with --results / RESULTS=") from None


def _check_args(args: argparse.Namespace) -> None:
    """Values every command shares, checked before anything runs."""
    if hasattr(args, "profile") and args.profile is None:  # the selection commands (plan, run, status)
        args.profile = config.default_profile(args.dataset)
    if getattr(args, "overrides", None):
        args.overrides = config.split_overrides(args.overrides)  # SET="a=1 b=[1, 2]" arrives as one string
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not timeout > 0:  # also NaN
        raise ConfigError(f"--timeout / TIMEOUT={timeout:g} is not valid; give a number of seconds > 0, "
                         "or leave it unset for no timeout")
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs / JOBS={jobs} is not valid; give an integer >= 1")


def _plan(args: argparse.Namespace):
    if args.command == "run" and any(p.exists() and not p.is_dir() for p in (args.results, *args.results.parents)):
        _check_results(args.results, write=True)  # before the plan reads run folders under it
    planned = plan(args.model, args.dataset, args.profile, args.iterations, config.parse_overrides(args.overrides),
                   args.results, args.data_root, args.tag)
    if args.command == "run":  # after the plan's checks: a plan that fails creates no results folder
        _check_results(args.results, write=True)
    # Another sweep's runs (their folders are locked) are left alone, and the user is told why.
    for p in planned:
        name = f"{p.spec.model}/{p.spec.dataset}/iter-{p.spec.iteration}"
        if p.state in LIVE and args.command == "run":
            logger.info(f"skipping {name}: {p.note}")
        elif p.state == RunStatus.STALE and args.command == "run":
            logger.info(f"redoing {name}: {p.note} (the old result is moved to superseded/)")
    return planned


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what in ("all", "models"):
        print("models:   " + ", ".join(config.model_names_on_disk()))
    if what in ("all", "datasets"):
        print("datasets: " + ", ".join(dataset_names()))
    if what in ("all", "profiles"):
        for name, prof in config.profiles().items():
            print(f"profile {name}: {prof.get('description', '')} ({prof['iterations']} iterations)")
    if what in ("all", "runners"):
        print("runners:  " + ", ".join(RUNNERS))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    planned = _plan(args)
    for p in planned:
        print(f"{p.state:12s} {p.spec.model:9s} {p.spec.dataset:10s} iter {p.spec.iteration}  {p.spec.hash}  {p.run_dir}"
              + (f"  ({p.note})" if p.note else ""))
    if args.estimate:
        from harness.estimate import estimate, render

        print(render(estimate(planned)))
    counts = Counter(p.state for p in planned)
    print(f"{len(planned)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + f"; {sum(p.todo for p in planned)} would run")
    return 0


def _threads_for(jobs: int, overrides: list[str]) -> list[str]:
    """Split the machine's cores among parallel runs unless the user chose (not part of the spec hash)."""
    if jobs > 1 and not any(o.startswith("train.threads=") for o in overrides):
        return overrides + [f"train.threads={max(1, (os.cpu_count() or 1) // jobs)}"]
    return overrides


def _prepare_generated(planned) -> None:
    """Generate the synthetic dataset once, here, rather than in every parallel run."""
    from common.datasets import load_pool

    seen = set()
    for p in planned:
        if p.todo and p.spec.dataset == "synthetic":
            opts = p.spec.config["data"]["synthetic"]
            key = tuple(sorted(opts.items()))
            if key not in seen:
                seen.add(key)
                pool = load_pool("synthetic", p.spec.data_root, synthetic=opts)
                logger.info(f"synthetic dataset ready: {len(pool)} images ({opts})")


def _gpus(value: str | None) -> list[str]:
    """GPUS=0,1 -> ['0', '1']: each concurrent run gets one of them."""
    if not value:
        return []
    ids = [g.strip() for g in value.split(",") if g.strip()]
    bad = [g for g in ids if not g.isdigit()]
    if bad or len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus / GPUS={value!r}: give distinct device indices, e.g. GPUS=0,1")
    return ids


def _runner_options(args: argparse.Namespace) -> dict:
    """Options of the chosen runner; a container-only option with another runner is an error."""
    per_runner = {"container": {"memory": args.memory, "shm_size": args.shm_size, "cpus": args.cpus},
                  "local": {"launch_prefix": args.launch_prefix},
                  "slurm": {"partition": args.partition, "slurm_time": args.slurm_time,
                            "gpus_per_run": args.gpus_per_run, "slurm_args": args.slurm_args,
                            "max_requeue": args.max_requeue, "launch_prefix": args.launch_prefix}}
    owners: dict[str, list[str]] = {}
    for runner, options in per_runner.items():
        for k, v in options.items():
            owners.setdefault(k, []).append(runner)
    for runner, options in per_runner.items():
        given = [k for k, v in options.items() if v is not None and args.runner not in owners[k]]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} applies to --runner {' or '.join(owners[given[0]])} "
                             f"only (runner: {args.runner})")
    options = {k: v for k, v in per_runner.get(args.runner, {}).items() if v is not None}
    if args.runner == "slurm":
        options["results"] = args.results  # where the job logs go, beside the runs
    return options


def cmd_run(args: argparse.Namespace) -> int:
    gpus = _gpus(args.gpus)
    options = _runner_options(args)
    if args.runner == "slurm":  # a cluster: each run gets CPUs of its own; JOBS, if given, caps the tasks at once
        check_cluster(options.get("partition"), args.results)  # before the plan makes or checks any data
    elif args.jobs is None:
        # One run per GPU when GPUs are given; otherwise the profile's parallelism.
        args.jobs = len(gpus) or int(config.profile(args.profile).get("jobs", 1))
    if not gpus and args.runner != "slurm":
        args.overrides = _threads_for(args.jobs, args.overrides)
    planned = _plan(args)
    _prepare_generated(planned)
    runner = get_runner(args.runner)
    try:
        runner(planned, jobs=args.jobs, timeout=args.timeout, gpus=gpus, **options)
    except KeyboardInterrupt:
        logger.info("sweep interrupted; finished runs are kept. Run the same command again to resume.")
        _report(args, quiet=True)
        return 130
    return _report(args, protocols={p.spec.protocol for p in planned},
                   cells={(p.spec.model, p.spec.dataset) for p in planned})


def _report(args: argparse.Namespace, quiet: bool = False, protocols: set[str] | None = None,
            cells: set[tuple[str, str]] | None = None) -> int:
    from harness.page import build_page
    from harness.report import render, render_markdown

    summary = collect(args.results)
    df = pd.read_csv(summary, dtype=str, keep_default_na=False)
    if df.empty:
        logger.info(f"no runs under {args.results}/runs yet")
        return 0
    logger.info(f"wrote {summary} ({len(df)} runs)")
    failed = waiting = 0
    rendered: dict[str, Path] = {}
    # One table set per protocol folder, so quick and full (or tagged variants) are never averaged together.
    # Every protocol is rendered, because the report page shows them all; only the requested ones are printed.
    for proto in sorted(set(df["protocol"])):
        sub = df[df["protocol"] == proto]
        out_dir = args.results / "tables" / proto
        out_dir.mkdir(parents=True, exist_ok=True)
        # Written for the report page and for readers of the tables folder; rendered from memory.
        sub.to_csv(out_dir / "summary.csv", index=False)
        render(sub, out_dir, ddof=args.ddof, results=args.results)
        rendered[proto] = out_dir
        if quiet or (protocols is not None and proto not in protocols):
            continue
        if sub["status"].isin(IN_PROGRESS).all():  # e.g. just submitted to SLURM: no table yet
            print(f"\nprotocol {proto}: no run has finished yet")
        else:
            print(f"\nprotocol {proto}  (tables, pairwise.csv, ranks.csv and figures in {out_dir}/)\n")
            print(render_markdown(sub, ddof=args.ddof))
        shown = sub if cells is None else sub[[(m, d) in cells for m, d in zip(sub["model"], sub["dataset"])]]
        done = shown[shown["status"] == RunStatus.DONE]
        for ds, grp in done.groupby("dataset"):
            rate = pd.to_numeric(grp["majority_rate"]).mean()
            print(f"majority-class rate of the {ds} test folds: {rate:.3f} (a model must beat this)")
        failed += int((~shown["status"].isin((RunStatus.DONE, *IN_PROGRESS))).sum())
        waiting += int(shown["status"].isin(IN_PROGRESS).sum())
    page = build_page(args.results, rendered, ddof=args.ddof)
    if not quiet:
        logger.info(f"\nreport page: {page}")
    if waiting:
        logger.info(f"\n{waiting} run(s) queued or still running (make status shows where they stand)")
    if failed:
        logger.info(f"\n{failed} run(s) did not finish; see status/error columns in {summary}")
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from harness.status import show

    return show(_plan(args))


def cmd_collect(args: argparse.Namespace) -> int:
    out = collect(args.results)
    logger.info(f"wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    return _report(args)


def cmd_build(args: argparse.Namespace) -> int:
    from harness import images
    from harness.plan import expand

    models = expand(args.model, config.model_names_on_disk(), "model")
    summary = images.build(models, base_image=args.base_image, force=args.force)
    if args.prune:
        gone = images.prune(models, base_image=args.base_image)
        logger.info(f"pruned {len(gone)} outdated image(s)" + (f": {', '.join(gone)}" if gone else ""))
    print("\nmodel      image                                   size      built")
    for model, info in summary.items():
        print(f"{model:10s} {info['tag']:39s} {info['size_mb'] / 1000:5.2f} GB  "
              + (f"yes, {info['seconds']:.0f} s" if info["built"] else "no (reused)"))
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from harness.lock import write_lock

    write_lock()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness", description="FER-crossval: plan, run and report "
                                 "model × dataset × iteration runs under one protocol.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list models, datasets, profiles and runners")
    p.add_argument("what", nargs="?", default="all", choices=["all", "models", "datasets", "profiles", "runners"])
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("plan", help="show what would run and what is already done")
    _add_selection(p)
    p.add_argument("--estimate", action="store_true",
                   help="also print the expected device-hours per model (a few training steps timed here, cached)")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("run", help="run the plan (skipping finished runs), then collect and report")
    _add_selection(p)
    p.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel (default: the profile's `jobs`, else 1)")
    p.add_argument("--timeout", type=float, default=None, help="per-run timeout in seconds")
    p.add_argument("--runner", default="local", choices=sorted(RUNNERS),
                   help="where runs execute: local subprocesses, or one container per run (make build first)")
    p.add_argument("--gpus", default=None,
                   help="GPU indices, e.g. 0,1: each concurrent run gets one (JOBS defaults to their number); "
                        "JOBS above their number puts ceil(JOBS/GPUs) runs on each GPU, each run capped at that "
                        "share of its memory (for small models)")
    p.add_argument("--memory", default=None, help="container runner: memory limit per run, e.g. 16g")
    p.add_argument("--shm-size", default=None, help="container runner: shared memory for DataLoader workers (2g)")
    p.add_argument("--cpus", type=float, default=None, help="container runner: CPU limit per run")
    p.add_argument("--launch-prefix", default=None,
                   help="local and slurm runners: command put before `python -m common.run SPEC`, e.g. "
                        "'apptainer exec --nv --pwd /opt/fer-crossval --bind /data dan.sif'")
    p.add_argument("--partition", default=None,
                   help="slurm runner: the partition to submit to (default: the cluster's)")
    p.add_argument("--slurm-time", default=None, help="slurm runner: time limit per run, e.g. 08:00:00 (the default)")
    p.add_argument("--gpus-per-run", type=int, default=None, help="slurm runner: GPUs each run asks for")
    p.add_argument("--slurm-args", default=None,
                   help="slurm runner: more sbatch options, e.g. \"--qos=high --account=lab\"")
    p.add_argument("--max-requeue", type=int, default=None,
                   help="slurm runner: how often a run reaching its time limit is requeued to go on (default 3)")
    p.add_argument("--ddof", type=int, default=1, choices=[0, 1], help="std ddof (reference table: 0)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("status", help="where every run of a selection stands: queued, running, done, failed")
    _add_selection(p)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("collect", help="compute metrics from predictions into results/summary.csv")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_collect)
    p = sub.add_parser("report", help="collect, then render tables (md, html, tex) and plots per protocol")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--ddof", type=int, default=1, choices=[0, 1], help="std ddof (reference table: 0)")
    p.set_defaults(func=cmd_report)
    register_regress(sub)
    register_bench(sub)
    register_profile(sub)
    register_predict(sub)
    p = sub.add_parser("build", help="build the model images (tag from content; unchanged ones are reused)")
    p.add_argument("--model", default="all", help="model name(s), comma-separated, or 'all' (default: all)")
    p.add_argument("--base-image", default=None,
                   help="upstream image the base is built from (default: $FER_BASE_IMAGE, else the pinned Debian)")
    p.add_argument("--force", action="store_true", help="rebuild even when an image with the tag exists")
    p.add_argument("--prune", action="store_true",
                   help="then remove these models' outdated images and bases no image uses any more")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("lock", help="resolve requirements.txt into requirements.lock (exact versions, hashes)")
    p.set_defaults(func=cmd_lock)
    args = ap.parse_args(argv)
    logs.setup_harness()
    try:
        _check_args(args)
        return args.func(args)
    # A mistake the user can fix is one message; anything else is a bug and keeps its traceback.
    except (FERUserError, SlurmError) as e:
        print(f"error: {e}")
        return 2
