#!/usr/bin/env bash
# The suite on another PyTorch and Python, on this CPU machine: by default as the GPU machines' image has them
# (Python 3.12, PyTorch 2.11 with torchvision, timm and transformers beside it, pandas 3.0, archcalc on
# PYTHONPATH rather than installed, pytest-xdist), so that what fails there for the software's sake fails here.
#
#   bash benchmarks/other_pytorch.sh [TORCH [PYTHON]]      e.g. 2.11.0 python3.12 (the defaults), 2.14.1 python3.11
#
# The environment is a venv in ${VENV:-/tmp/archcalc-torch-TORCH-PYTHON}, made once (PyPI's CUDA build of torch
# with its libraries: some 5 GB and three minutes here; the CUDA libraries only load, nothing runs on a GPU);
# the suite runs on a fresh clone of this checkout's HEAD beside it ($VENV-tree), with two workers (about 6
# minutes), its log in $VENV/pytest.log. pyproject.toml's torch range names the releases this has passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${1:-2.11.0}
PYTHON=${2:-python3.12}
MINOR=$(echo "$TORCH" | cut -d. -f2)
VISION="0.$((MINOR + 15)).*"  # torchvision 0.26 goes with torch 2.11, 0.29 with 2.14
if ! "$PYTHON" -c "" 2>/dev/null; then  # (pyenv's shim for a version not selected: its own interpreter)
    for candidate in "$HOME"/.pyenv/versions/"${PYTHON#python}"*/bin/"$PYTHON"; do
        if [ -x "$candidate" ]; then PYTHON=$candidate; break; fi
    done
fi
VENV=${VENV:-/tmp/archcalc-torch-$TORCH-$(basename "$PYTHON")}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "torch==$TORCH" "torchvision==$VISION" "pandas>=3,<3.1" numpy timm \
        transformers matplotlib typer rich hypothesis pytest pytest-xdist fvcore==0.1.5.post20221221 torchinfo==1.8.0 \
        thop==0.1.1.post2209072238 ptflops==0.7.5 2>&1 | { grep -v "is ignored: it is neither a file nor" || true; }
fi
TREE="$VENV-tree"  # (beside the venv, not in it: a user's file inside sys.prefix would read as a library's)
rm -rf "$TREE"
git clone -q . "$TREE"
"$VENV/bin/python" -c "import sys, torch, torchvision, pandas; print(sys.version.split()[0], torch.__version__,
torchvision.__version__, 'pandas', pandas.__version__)"
cd "$TREE"
set +e
PYTHONPATH="$TREE" "$VENV/bin/python" -m pytest -n 2 -p no:cacheprovider >"$VENV/pytest.log" 2>&1
code=$?
tail -3 "$VENV/pytest.log"
exit $code
