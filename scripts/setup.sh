#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine with Python 3.11: system packages,
# a virtual environment in .venv, pinned Python packages, this project in
# editable mode. Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${UIO2_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# --- system packages -------------------------------------------------------
# EGL/Mesa and OSMesa: offscreen MuJoCo rendering; espeak-ng + sox: speech;
# docker-compose: validates docker-compose.yml without an engine.
APT_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 espeak-ng sox docker-compose)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing system packages: ${missing[*]}" >&2
    echo "[setup] run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# --- Python ------------------------------------------------------------------
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "[setup] Python 3.11 is required, $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 1; }
[[ -x $VENV/bin/python ]] || { echo "[setup] creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY=$VENV/bin/python

stamp=$(cat requirements.txt constraints.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [[ -f $VENV/.uio2-stamp && $(cat "$VENV/.uio2-stamp") == "$stamp" ]]; then
  exit 0
fi

# A GPU machine may already carry a CUDA torch in this venv: keep it rather
# than replacing it with the CPU pin (anything else would pull gigabytes).
constraints=constraints.txt
reqs=requirements.txt
if cuda_torch=$("$PY" -c 'import torch; assert torch.version.cuda; print(torch.__version__)' 2>/dev/null); then
  echo "[setup] keeping the installed CUDA torch $cuda_torch"
  grep -v '^torch==' requirements.txt > "$VENV/requirements-keep-torch.txt"
  echo "torch==$cuda_torch" > "$VENV/constraints-keep-torch.txt"
  reqs=$VENV/requirements-keep-torch.txt
  constraints=$VENV/constraints-keep-torch.txt
fi

echo "[setup] installing Python packages into $VENV"
"$PY" -m pip install -q --upgrade pip
PIP_CONSTRAINT=$constraints "$PY" -m pip install -q -r "$reqs"
# mistral-common ships a LLaMA-style 32k SentencePiece model; its own pins
# clash with numpy 2.4, and we only need the file.
"$PY" -m pip install -q --no-deps mistral-common==1.13.1
PIP_CONSTRAINT=$constraints "$PY" -m pip install -q --no-deps -e .

# pip installs the rosbridge binaries without their exec bit.
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
chmod +x "$site"/rosbridge_server_rs/rosbridge_server_rs_* 2>/dev/null || true

echo "$stamp" > "$VENV/.uio2-stamp"
echo "[setup] done: $("$PY" -c 'import torch; print("torch", torch.__version__)')"
