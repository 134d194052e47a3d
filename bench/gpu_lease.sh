#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool), all within a deadline: the CUDA tests, CUDA-graph throughput
# (bench/cuda_graphs.py), then bench/disentanglement.py's GPU schedule (beta 1, beta 4, capacity; three runs side by
# side) for the time left. Runs with the machine's own python3 and PyTorch, betavae from src/. What comes back lies
# in $OUT: logs, the throughput table, and the run folders (no checkpoints) as runs.tgz, to be scored on any machine
# with `python bench/disentanglement.py --runs RUNS --variants ...` (it scores finished runs without training them).
# Usage: OUT=folder [VARIANTS=beta1,beta4,capacity-gamma100] [SEED=1] [THROUGHPUT=yes] bash bench/gpu_lease.sh [deadline s]
set -u
DEADLINE=${1:-560}
VARIANTS=${VARIANTS:-beta1,beta4,capacity-gamma100}
SEED=${SEED:-1}
THROUGHPUT=${THROUGHPUT:-yes}
START=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/cache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

# dSprites renders on the CPUs while the GPU is tested
python3 -c "from betavae.data import dsprites; dsprites.packed_images()" > "$OUT/render.log" 2>&1 &
RENDER=$!

GRAPHS=true  # the graph tests decide; should they fail, training runs eagerly
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_training.py -k cuda \
  > "$OUT/tests.log" 2>&1 || GRAPHS=false
tail -n 3 "$OUT/tests.log"
wait $RENDER; tail -n 2 "$OUT/render.log"  # before timing, so that rendering does not slow the host side

PRECISION=bf16
if [ "$GRAPHS" = true ] && [ "$THROUGHPUT" = yes ]; then
  timeout 120 python3 bench/cuda_graphs.py --json "$OUT/cuda_graphs.json" 2>&1 | tee "$OUT/cuda_graphs.txt"
  grep -q "fastest: --precision fp32" "$OUT/cuda_graphs.txt" && PRECISION=fp32
fi
echo "cuda graphs: $GRAPHS, precision: $PRECISION, $(left) s left"

# training time per run: what is left, less process start-up, per-epoch evaluation and packing (27 s of
# overhead seen on an H100 with three runs, 2026-11-26; 60 s kept)
MINUTES=$(python3 -c "print(max(1.0, ($(left) - 60) / 60))")
RUNS=/tmp/runs
timeout -s INT -k 30 $(( $(left) - 20 )) python3 bench/disentanglement.py --gpu --jobs 3 --train-only \
  --variants "$VARIANTS" --seed "$SEED" --precision $PRECISION --minutes "$MINUTES" --runs $RUNS \
  --train-args="--cuda-graphs $GRAPHS --no-figures" > "$OUT/train.log" 2>&1
echo "training ended with $?, $(left) s left"
tail -n 4 "$OUT/train.log"
for run in $RUNS/*/; do
  python3 - "$run" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
print(run.name, "epoch", last["epoch"], "step", last["step"], "img/s", last["images_per_second"],
      "val recon %.2f kl %.2f" % (last["val"]["recon"], last["val"]["kl"]))
EOF
done
tar czf "$OUT/runs.tgz" --exclude=checkpoint.pt -C /tmp runs && ls -la "$OUT"
