# vivit-interp: `make figures` regenerates every figure and table, `make test` checks everything.
# Both create .venv and install the pinned dependencies on first use.

SHELL := /bin/bash
PROFILE ?= toy# toy | paper | paper-shape | path/to/vivit-checkpoint
STRIKE_VIDEO ?=# paper profile: your strike clip (default: the author's clip from the HF hub)
GUTTER_VIDEO ?=# paper profile: your gutter clip
PAIRS ?=# number of matched pairs (default: each notebook's own)
PAIRS_CSV ?=# a CSV of your own video pairs: pair_id,strike_path,gutter_path[,matched]
TARGET ?= bowling# the analysed class: a class name or an index
DEVICE ?= auto# auto (a CUDA GPU when available) | cpu | cuda
ARCH ?= vivit# make toy-model: vivit | timesformer | videomae | vjepa2 | outcome (the positive control) | seed1 | seed2 (the seed spread)
PREPROCESS ?= checkpoint# checkpoint (the checkpoint's own processor; hub ViViT: [-3, 1]) | original ([-1, 1])
LANES ?=# kernels side by side after notebook 00 (default 1; 2 is faster on 2+ cores, tables may differ in the last digit)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export HF_HUB_DISABLE_TELEMETRY := 1
export MPLBACKEND := agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help figures seeds site test test-extended test-notebooks test-browser exercises lint toy-model bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(STAMP): pyproject.toml constraints.txt
	@echo "== setting up $(VENV) (first run only; reruns when pyproject.toml or constraints.txt change)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

figures: $(STAMP) ## run notebooks 00.. for PROFILE (default toy) -> figures/PROFILE, build/PROFILE
	$(PY) -m utils.runner --profile "$(PROFILE)" --strike-video "$(STRIKE_VIDEO)" \
		--gutter-video "$(GUTTER_VIDEO)" --pairs "$(PAIRS)" --pairs-csv "$(PAIRS_CSV)" \
		--target "$(TARGET)" --device "$(DEVICE)" --preprocess "$(PREPROCESS)" --lanes "$(LANES)" $(NOTEBOOKS)
	@if [ "$(PROFILE)" = toy ] && [ -z "$(PAIRS_CSV)$(STRIKE_VIDEO)" ]; then $(PY) -m utils.findings; fi

SEED_PROFILES := toy-seed1 toy-seed2
SEED_NOTEBOOKS := notebooks/00_data_prep.ipynb notebooks/06_beyond_the_paper.ipynb notebooks/09_controls.ipynb
seeds: $(STAMP) ## the seed spread: notebooks 00, 06, 09 for the toy ViViTs of torch seeds 1, 2 -> figures/toy-seedN (toy's findings compare with them; about 2 minutes each)
	for p in $(SEED_PROFILES); do $(PY) -m utils.runner --profile $$p --no-html $(SEED_NOTEBOOKS) || exit 1; done

site: $(STAMP) ## the reader's site of PROFILE's executed notebooks, README, findings and figures -> site/index.html (after make figures; opens offline)
	$(PY) -m utils.site --profile "$(PROFILE)"

test: $(STAMP) ## lint, unit tests and every notebook (offline: HF_HUB_OFFLINE=1)
	$(PY) -m ruff check utils tests notebooks
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2

test-extended: $(STAMP) ## every notebook for toy-timesformer, toy-videomae and toy-vjepa2, two at a time (about 4 minutes; CI runs it too)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m extended -n 2

# two notebooks at a time, each kernel on its share of the cores; 00 first (it renders the clips the
# others read) and 09 last (it reads what 06 wrote)
NB_THREADS := $(shell n=$$(( $$(nproc 2>/dev/null || echo 2) / 2 )); echo $$(( n > 0 ? n : 1 )))
NB_FIRST := notebooks/00_data_prep.ipynb
NB_LAST := notebooks/09_controls.ipynb
NB_LONGEST := notebooks/08_circuit_discovery.ipynb# handed out first, so that it does not start last
NBMAKE := env -u MPLBACKEND HF_HUB_OFFLINE=1 $(PY) -m pytest --nbmake -o addopts="" -q
test-notebooks: $(STAMP) ## every notebook as Jupyter runs it (nbmake: a fresh kernel each, inline figures), and the exercises' solutions; writes figures/toy as make figures does
	$(NBMAKE) $(NB_FIRST)
	OMP_NUM_THREADS=$(NB_THREADS) $(NBMAKE) -n 2 $(NB_LONGEST) $(filter-out $(NB_FIRST) $(NB_LAST) $(NB_LONGEST),$(NOTEBOOKS)) notebooks/exercises/solutions/
	$(NBMAKE) $(NB_LAST)

BROWSER_STAMP := $(VENV)/.browser-stamp
$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[browser]"
	touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP) ## the site and the explorer in headless chromium (needs Debian's chromium: apt-get install chromium; .ci/run installs it)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m browser -q

exercises: $(STAMP) ## rebuild the exercise notebooks (student and solution) from notebooks/exercises/src
	$(PY) -m utils.exercises

lint: $(STAMP) ## ruff only (the package, the tests and the notebooks)
	$(PY) -m ruff check utils tests notebooks

toy-model: $(STAMP) ## retrain a toy model from scratch (fixed seed): ARCH=vivit (default) | timesformer | videomae | vjepa2 | outcome | seed1 | seed2
	$(PY) -m utils.train --arch "$(ARCH)"

bench: $(STAMP) ## benchmarks at paper scale and on the toy model -> benchmarks/results.md
	HF_HUB_OFFLINE=1 $(PY) -m utils.bench --device "$(DEVICE)"

lock: $(STAMP) ## re-pin constraints.txt to what .venv holds
	{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | sed 's/+cpu//'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean: ## remove executed notebooks (build/); figures and the venv stay
	rm -rf build
