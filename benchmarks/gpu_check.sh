#!/usr/bin/env bash
# Every check of archcalc that needs a GPU, in one run, each step's output in $OUT/gpu_check.log (and the
# suite's in $OUT/pytest.log), each step under its own time limit so that one slow step cannot eat the rest.
#
# On a machine lent through the device tool (its image has torch, typer, rich, pandas, pytest-xdist and
# hypothesis; not fvcore, torchinfo, thop or ptflops), prepare the wheels here once, in the repo's root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl fvcore==0.1.5.post20221221 iopath==0.1.10 yacs==0.1.8 \
#       termcolor==2.5.0 torchinfo==1.8.0 thop==0.1.1.post2209072238 ptflops==0.7.5
#   (fvcore and iopath publish only sdists: build them with `pip wheel --no-deps -w .whl fvcore iopath`)
# then run, with carry [".whl"] and a timeout of 600 s:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
#       PYTHONPATH=/tmp/site:$PWD bash benchmarks/gpu_check.sh
# Without $OUT (on your own GPU machine) the logs go to ./gpu_check/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONPATH="${PYTHONPATH:-}:$PWD" PYTHONUNBUFFERED=1

step() {  # step SECONDS TITLE COMMAND...: one check, its output and exit code in the log
    local limit=$1 title=$2
    shift 2
    echo "=== $title ($(date +%T), limit ${limit}s): $*" >>"$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== exit $? after ${SECONDS}s in all" >>"$LOG"
}

step 20 "the machine" bash -c 'nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.version.cuda,
torch.backends.cudnn.version(), torch.cuda.get_device_name())"'
# 1. GPU memory: the simulated peak against max_memory_allocated for every configuration, then with cuDNN's
#    convolution workspace capped at 1 MiB, which leaves the tensors alone: the difference is the workspace
step 10 "the attention kernel the simulation assumes, against this GPU's choice" python3 benchmarks/sdpa_rule.py
step 160 "memory_check, cuda" python3 benchmarks/memory_check.py --device cuda
step 60 "memory_check --quick --no-amp, cuda, cuDNN workspace capped" env CUDNN_CONV_WSCAP_DBG=1 \
    python3 benchmarks/memory_check.py --device cuda --quick --no-amp
step 25 "resnet50 channels-last, measured" python3 -m archcalc memory resnet50 --batch 64 --optimizer adam \
    --channels-last --measure cuda
# 2. the largest batch: predicted on the meta device, then confirmed by running steps under a 16 GiB cap
step 60 "fit resnet50 16GiB, measured" python3 -m archcalc memory resnet50 --fit 16GiB --measure cuda
step 60 "fit resnet50 16GiB adam float16, measured" python3 -m archcalc memory resnet50 --fit 16GiB \
    --optimizer adam --amp float16 --measure cuda
# 3. the time of a training step and of a run, and its agreement with torch.utils.benchmark
step 45 "training time, the lab's run" python3 -m archcalc time vgg_base vgg_skip vgg_dense vgg_ca --training \
    --device cuda --batch 100 --samples 50000 --epochs 20
step 30 "training time, resnet50 Adam, float32 and float16 autocast" bash -c "python3 -m archcalc time resnet50_tv \
    --training --optimizer adam --device cuda --batch 64 && python3 -m archcalc time resnet50_tv --training \
    --optimizer adam --device cuda --batch 64 --amp float16"
step 45 "timing agreement, training, cuda" python3 benchmarks/timing_agreement.py --device cuda --training
# 4. the suite, with a GPU present (the property tests too), last (about 585 s in all, under the 600 s of a run)
PARALLEL=$(python3 -c "import xdist" 2>/dev/null && echo "-n 14")  # pytest-xdist, where the image has it
step 70 "the suite" bash -c "python3 -m pytest -q $PARALLEL -p no:cacheprovider >'$OUT/pytest.log' 2>&1; \
    echo pytest exit \$?; tail -40 '$OUT/pytest.log'"
echo "done after ${SECONDS}s" >>"$LOG"
