# The README's two commands: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export WANDB_MODE ?= offline

.PHONY: setup setup-lerobot demo test test-fast lint format

setup:
	@bash scripts/setup.sh

# The real lerobot library in .venv-lerobot: tests check that it loads what we write (1-3 min once, then a stamp skips it).
setup-lerobot:
	@bash scripts/setup_lerobot.sh

demo: setup
	$(VENV)/bin/uio2 demo

test: setup setup-lerobot
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-fast: setup setup-lerobot
	$(PY) -m pytest -q -m "not slow and not ros"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
