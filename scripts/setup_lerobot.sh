#!/usr/bin/env bash
# A second virtual environment, .venv-lerobot, holding the real lerobot library (0.4.4, the newest for
# Python 3.11) next to the CPU torch 2.13 of .venv. Tests run lerobot in a subprocess with this venv's
# python to check that what we write lerobot loads, and scripts/lerobot_fixtures.py regenerates the
# committed fixtures under tests/fixtures/lerobot/ with it. Re-running is cheap: a stamp skips it.
#
# lerobot 0.4.4 pins torch < 2.11, so it goes in with --no-deps, followed by the runtime dependencies
# that writing and reading a dataset import. torch stays pinned through a constraints file (a bare
# `torch` would pull gigabytes of CUDA). The only torchvision wheel for torch 2.13 is a CUDA build
# whose C ops do not load on a CPU torch: scripts/lerobot_shim.py declares the op schemas before the
# import (the note in that file says how).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${UIO2_LEROBOT_VENV:-.venv-lerobot}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

stamp=$(cat constraints.txt scripts/setup_lerobot.sh | sha256sum | cut -c1-16)
if [[ -f $VENV/.uio2-stamp && $(cat "$VENV/.uio2-stamp") == "$stamp" ]]; then
  exit 0
fi
start=$SECONDS

# lerobot decodes videos with torchcodec, which loads the FFmpeg 5 shared libraries (Debian 12's).
APT_PACKAGES=(libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup-lerobot] installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[setup-lerobot] missing system packages: ${missing[*]}" >&2
    echo "[setup-lerobot] run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
[[ -x $VENV/bin/python ]] || { echo "[setup-lerobot] creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY=$VENV/bin/python
export PIP_CONSTRAINT=$PWD/constraints.txt PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[setup-lerobot] installing lerobot 0.4.4 and its dataset dependencies into $VENV"
"$PY" -m pip install -q torch==2.13.0 \
  'numpy<2.3' 'pandas<3' 'Pillow<13' 'pyarrow>=21' 'datasets>=4,<5' 'huggingface-hub>=0.34.2,<0.36' \
  'av>=15,<16' 'jsonlines>=4,<5' 'packaging>=24.2,<26' draccus==0.10.0 'einops>=0.8,<0.9' \
  'termcolor>=2.4,<4' 'imageio[ffmpeg]>=2.34,<3' 'deepdiff>=7.0.1,<9' 'accelerate>=1.10,<2' safetensors
# torchvision 0.28 is the one built for torch 2.13 (a CUDA build: see lerobot_shim.py); torchcodec 0.13
# is lerobot's video decoder for it. Both without their own dependencies, which would replace torch.
"$PY" -m pip install -q --no-deps lerobot==0.4.4 torchvision==0.28.0 torchcodec==0.13.0
"$PY" scripts/lerobot_shim.py  # imports lerobot's dataset module: fails here, not in a test, if broken
echo "$stamp" > "$VENV/.uio2-stamp"
echo "[setup-lerobot] done in $((SECONDS - start)) s"
