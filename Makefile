# FER-crossval: the front door. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python

MODEL      ?= adadf
DATASET    ?= synthetic
# Unset: the harness's default (common/config.py:default_profile): quick when every dataset is
# synthetic, full (the reference protocol) otherwise.
PROFILE    ?=
ITERATIONS ?=
JOBS       ?=
SET        ?=
# SET reaches the harness through the environment as one argument ("$$SET"), never as recipe text:
# list values with spaces stay whole and nothing in it is run by the shell.
export SET
DATA_ROOT  ?=
TIMEOUT    ?=
TAG        ?=
RESULTS    ?= results
DDOF       ?= 1

# Containers (docker/README.md): RUNNER=container runs each iteration in the model's image.
RUNNER     ?= local
GPUS       ?=
MEMORY     ?=
BASE_IMAGE ?=
# A command put before `python -m common.run` by the local runner (e.g. an Apptainer exec); passed
# through the environment like SET, so its spaces and quotes stay intact.
LAUNCH     ?=
export LAUNCH
ifneq ($(strip $(BASE_IMAGE)),)
export FER_BASE_IMAGE := $(BASE_IMAGE)
endif

RUN_ARGS = --model $(MODEL) --dataset $(DATASET) $(if $(PROFILE),--profile $(PROFILE)) --results $(RESULTS) \
	$(if $(ITERATIONS),--iterations $(ITERATIONS)) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
	$(if $(TAG),--tag $(TAG)) $(if $(strip $(SET)),--set "$$SET")

.PHONY: help venv run plan list report test align clean-venv engine build lock test-containers

help:
	@echo "make run     [MODEL=adadf] [DATASET=synthetic] [PROFILE=quick|full] [ITERATIONS=N] [JOBS=N] [SET=\"k=v ...\"] [DATA_ROOT=dir] [TIMEOUT=s] [TAG=name]"
	@echo "make plan    same selection: what would run, what is done [ESTIMATE=1: expected device-hours]"
	@echo "make report  [RESULTS=results] [DDOF=1]: collect and render tables"
	@echo "make list    models, datasets, profiles"
	@echo "make align   DATASET=expw SRC=raw DST=aligned [ALIGN_ARGS=...]"
	@echo "make test    the test suite"
	@echo "make bench   [MODEL=dan] [BENCH_ARGS=\"--size 112 --steps 8\"]: data path vs reference-style loader vs training step (results/bench/bench.json)"
	@echo "make profile [MODEL=all|name,...] [DEVICE=auto|cpu|cuda] [THREADS=N]: parameters, GMACs, speed, memory per model"
	@echo "make predict RUN=results/runs/<model>/<dataset>/<protocol>/iter-<k> IMAGES=dir [ALIGN=1] [OUT=dir] [RUNNER=container]"
	@echo "make regress [MODEL=all|name,...] [DATASET=synthetic] [RUNNER=local|container] [UPDATE=1] [DATA_ROOT=dir]: short CPU runs vs baselines"
	@echo "make engine  install/start Podman's Docker-compatible service and a local base image (no Docker needed)"
	@echo "make build   [MODEL=name|all] [BASE_IMAGE=ref] [PRUNE=1]: build model images (content-tagged, reused when unchanged)"
	@echo "make run ... RUNNER=container [GPUS=0,1] [MEMORY=16g]: one container per run; LAUNCH=\"apptainer exec ...\": local runs behind a command"
	@echo "make lock    re-resolve requirements.txt into requirements.lock (what the images install)"
	@echo "make test-containers  build the DAN image and check container runs for real (needs make engine)"
	@echo "make run ... RUNNER=slurm [PARTITION=gpu] [SLURM_TIME=08:00:00] [GPUS_PER_RUN=1] [SLURM_ARGS=\"--qos=...\"]: submit as a job array"
	@echo "make status  same selection: queued (waited), running (epoch), done, failed (SLURM state)"
	@echo "make slurm-up     a single-node SLURM cluster on this host (state in .cache/slurm)"
	@echo "make test-slurm   start it and check the SLURM runner for real"

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m harness run $(RUN_ARGS) --runner $(RUNNER) $(if $(GPUS),--gpus $(GPUS)) $(if $(MEMORY),--memory $(MEMORY)) \
		$(if $(strip $(LAUNCH)),--launch-prefix "$$LAUNCH") $(if $(JOBS),--jobs $(JOBS)) --ddof $(DDOF) $(if $(TIMEOUT),--timeout $(TIMEOUT)) \
		$(SLURM_RUN_ARGS)

# ESTIMATE=1: also the expected device-hours per model (a few training steps timed on this machine, cached).
ESTIMATE   ?=
plan: venv
	$(PY) -m harness plan $(RUN_ARGS) $(if $(filter 1 yes true,$(ESTIMATE)),--estimate)

list: venv
	$(PY) -m harness list

report: venv
	$(PY) -m harness report --results $(RESULTS) --ddof $(DDOF)

align: venv
	$(PY) -m preprocess align --dataset $(DATASET) --src $(SRC) --dst $(DST) $(ALIGN_ARGS)

test: venv
	$(PY) -m pytest -q -m "not containers and not slurm" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

engine:
	docker/engine.sh up

build: venv
	$(PY) -m harness build --model $(MODEL) $(if $(PRUNE),--prune)

lock: venv
	$(PY) -m harness lock

# Real containers: the engine is set up (or reused), the DAN image built from the local base.
test-containers: venv engine
	FER_BASE_IMAGE=$${FER_BASE_IMAGE:-localhost/fer-crossval/debian:bookworm-minbase} \
		$(PY) -m pytest -q -m containers tests/containers $(PYTEST_ARGS)

# Regression checks (harness/regress.py): one short deterministic CPU run per model under the regress
# profile, compared with its baseline (tests/regress/baselines/ for synthetic, committed; for real datasets
# $(RESULTS)/regress/baselines/). UPDATE=1 writes the baselines. MODEL defaults to all eight here.
REGRESS_MODEL = $(if $(filter file,$(origin MODEL)),all,$(MODEL))
.PHONY: regress
regress: venv
	$(PY) -m harness regress --model $(REGRESS_MODEL) --dataset $(DATASET) --results $(RESULTS) $(if $(RUNNER),--runner $(RUNNER)) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(JOBS),--jobs $(JOBS)) $(if $(TIMEOUT),--timeout $(TIMEOUT)) \
		$(if $(strip $(SET)),--set "$$SET") $(if $(filter 1 yes true,$(UPDATE)),--update)

# Efficiency (harness/profile.py): parameters, GMACs, latency, throughput and peak memory of each model on
# this machine, into $(RESULTS)/profile/<device>.csv and tables. MODEL defaults to all eight here.
# DEVICE: auto|cpu|cuda; THREADS: torch CPU threads.
PROFILE_MODEL = $(if $(filter file,$(origin MODEL)),all,$(MODEL))
DEVICE  ?= auto
THREADS ?=
.PHONY: profile predict
profile: venv
	$(PY) -m harness profile --model $(PROFILE_MODEL) --device $(DEVICE) --results $(RESULTS) \
		$(if $(THREADS),--threads $(THREADS)) $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(strip $(SET)),--set "$$SET")

# A finished run on new photos (harness/predict.py): make predict RUN=results/runs/.../iter-0 IMAGES=photos/ [ALIGN=1]
# [OUT=dir] [RUNNER=container] [GPUS=0].
predict: venv
	$(PY) -m harness predict --run "$(RUN)" --images "$(IMAGES)" --results $(RESULTS) --runner $(RUNNER) \
		$(if $(filter 1 yes true,$(ALIGN)),--align) $(if $(OUT),--out "$(OUT)") $(if $(THREADS),--threads $(THREADS)) \
		$(if $(GPUS),--gpus $(GPUS) --device cuda,--device $(if $(filter auto,$(DEVICE)),cpu,$(DEVICE))) \
		$(if $(MEMORY),--memory $(MEMORY))

# Performance (README, "Performance"): this suite's data path, a reference-style loader and the training
# step side by side on generated data; writes $(RESULTS)/bench/bench.json. DAN unless MODEL is given.
BENCH_MODEL = $(if $(filter file,$(origin MODEL)),dan,$(MODEL))
BENCH_ARGS ?=
.PHONY: bench
bench: venv
	$(PY) -m harness bench --model $(BENCH_MODEL) --results $(RESULTS) $(BENCH_ARGS)

# SLURM (README, "Running on a SLURM cluster"): RUNNER=slurm submits the sweep as one job array and returns
# at once; `make status` follows its runs, `make run` again collects them. SLURM_ARGS reaches the harness
# whole, through the environment (as SET). `make slurm-up` starts a single-node cluster on this host
# (harness/cluster/slurm-up.sh, state in .cache/slurm); its config is used when no SLURM_CONF is set.
PARTITION    ?=
SLURM_TIME   ?=
GPUS_PER_RUN ?=
SLURM_ARGS   ?=
export SLURM_ARGS
SLURM_RUN_ARGS = $(if $(PARTITION),--partition $(PARTITION)) $(if $(SLURM_TIME),--slurm-time $(SLURM_TIME)) \
	$(if $(GPUS_PER_RUN),--gpus-per-run $(GPUS_PER_RUN)) $(if $(strip $(SLURM_ARGS)),--slurm-args "$$SLURM_ARGS")
ifneq ($(wildcard .cache/slurm/etc/slurm.conf),)
export SLURM_CONF ?= $(CURDIR)/.cache/slurm/etc/slurm.conf
endif
.PHONY: status slurm-up test-slurm
status: venv
	$(PY) -m harness status $(RUN_ARGS)

slurm-up:
	harness/cluster/slurm-up.sh up

# Real SLURM: the single-node cluster is started (or reused); a cluster that cannot start fails the stage.
test-slurm: venv slurm-up
	SLURM_CONF=$(CURDIR)/.cache/slurm/etc/slurm.conf $(PY) -m pytest -q -m slurm tests/slurm $(PYTEST_ARGS)
