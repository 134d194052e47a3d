#!/usr/bin/env bash
# Create .venv and install betavae with what the tests need. torch is pinned to the CPU build this machine serves
# (a bare "torch" can pull a several-GB CUDA build); elsewhere any torch >= 2.4 works.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() {  # pip's own exit status counts; only the noise about this machine's local index is dropped
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}
pip_install "torch==${TORCH_VERSION:-2.13.0}"
pip_install -e ".[dev${EXTRAS:+,$EXTRAS}]"
.venv/bin/python -c "import betavae, torch; print(f'betavae {betavae.__version__}, torch {torch.__version__}')"
