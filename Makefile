# make demo / make test each do their own set-up from scratch (venv, package, dataset).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RETRY := tools/retry 3

.PHONY: demo demo-seg demo-det test test-slow test-gpu bench setup dataset clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(RETRY) $(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the builds this machine kind has on disk (see README "Why these pins")
	$(RETRY) $(PY) -m pip install -q -c constraints.txt torch torchvision
	$(RETRY) $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

dataset:
	tools/install-dataset

# The whole pipeline on the shipped reference model: the default recipe (recipes/fmnist_resnet18.yaml,
# docs/recipes.md) into runs/fmnist-resnet18. A rerun reuses the stages whose inputs are unchanged;
# --force lets a newer default recipe replace the run an older one left there.
demo: setup dataset
	$(VENV)/bin/shrink run --force

# The same pipeline on a segmenter and on a detector: the shipped LR-ASPP and SSDlite references on
# scenes composed from Fashion-MNIST (docs/tasks.md), into runs/fmnist-lraspp and runs/fmnist-ssdlite.
demo-seg: setup dataset
	$(VENV)/bin/shrink run fmnist_lraspp --force

demo-det: setup dataset
	$(VENV)/bin/shrink run fmnist_ssdlite --force

test: setup dataset
	$(VENV)/bin/pytest -q

test-slow: setup dataset
	$(VENV)/bin/pytest -q -m slow

# On a machine with CUDA (the GPU machine of the device tool): the gpu-marked tests.
test-gpu: setup dataset
	$(VENV)/bin/pytest -q -m gpu

bench: setup dataset
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
