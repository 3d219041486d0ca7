# lamp_tf: `make demo` runs the main job, `make test` the tests; both set up what they need.
VENV := .venv
PY := $(VENV)/bin/python
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
PYTEST_WORKERS ?= 2

.PHONY: setup data demo test test-quick bench clean

setup: $(VENV)/.installed data

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (no download at run time).
data:
	@if [ -n "$$LAMP_FASHION_MNIST_DIR" ] || [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	else \
	  echo "Fashion-MNIST is missing; install it with:  sudo apt-get install -y dataset-fashion-mnist"; \
	fi

demo: setup
	$(VENV)/bin/lamp-tf-reproduce --preset=quick --workdir=runs/demo

test: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "" tests  # every test, the slow ones included

test-quick: setup  # the tests not marked slow (pytest.ini)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests

bench: setup
	@$(PY) -c "import torch" 2>/dev/null || $(VENV)/bin/pip install -q torch==2.13.0  # benchmark only
	@mkdir -p runs/bench
	$(PY) benchmarks/gan_step_bench.py --json=runs/bench/gan_step.json
	$(PY) benchmarks/fisher_bench.py --json=runs/bench/fisher.json
	$(PY) benchmarks/mergan_replay_bench.py --json=runs/bench/mergan_replay.json
	$(PY) benchmarks/profile_gan_step.py --json=runs/bench/profile.json
	$(PY) benchmarks/bf16_quality.py --json=runs/bench/bf16_quality.json
	$(PY) benchmarks/report.py runs/bench benchmarks/RESULTS.md
	@cat benchmarks/RESULTS.md

clean:
	rm -rf runs build *.egg-info
