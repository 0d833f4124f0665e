#!/usr/bin/env bash
# Regenerate tests/fixtures/lerobot/{image,video} with the real lerobot (building .venv-lerobot first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_lerobot.sh
HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} .venv-lerobot/bin/python scripts/lerobot_fixtures.py write tests/fixtures/lerobot
du -sh tests/fixtures/lerobot
