#!/usr/bin/env bash
# Everything that needs a GPU, in one short run (a few minutes on one H100):
#   1. the whole test suite with CuPy enabled: the CuPy cases of every backend-parametrised
#      test and the RawKernel tests run instead of skipping (log: $OUT/pytest.log; it does not
#      stop at the first failure, so one run shows them all). GPU_CHECK_TESTS=gpu runs only
#      the tests that skip without a GPU (about 100, a minute instead of a cold Numba build);
#   2. LeNet-5 epoch time on Fashion-MNIST, minidnn (CuPy) against PyTorch CUDA on the same
#      GPU, data on the GPU, at batch 64 and 256 ($OUT/train_speed_cuda_b64.json, _b256.json,
#      each with minidnn's time per op; the table is also in $OUT/train_speed_b64.log);
#   3. the reproduction pipeline on the GPU: `python -m admm reproduce --all --only CONFIGS
#      --device cuda` for the shipped configs in GPU_CHECK_CONFIGS (default: the filter and
#      channel ADMM runs), their wall time, results.json / results.md and each run's
#      state.json in $OUT/reproduce/ (the checkpoints stay behind);
#   4. (only when GPU_CHECK_STEPS names it) a seed study on the GPU: `reproduce --all --only
#      SEED_CONFIGS --seeds SEEDS --jobs <one per seed> --device cuda`, every seed in a process
#      of its own (one process leaves the GPU mostly idle); seeds.json / .md / .png, each seed's
#      results.json and log in $OUT/seeds/. The same work by hand (five seeds of the eight
#      filter and channel configs, five processes at once) took 314 + 236 s on an H200.
# Every step runs even when an earlier one fails; logs and JSON land in $OUT (default
# ./gpu_out), with a summary in $OUT/gpu_check.json; the exit status is non-zero when a step
# failed. Without a usable GPU it stops at once with exit status 2 and says why.
#
# Needs CuPy, Numba, PyTorch (CUDA build) and pytest installed; no network. Fashion-MNIST
# is read from $MINIDNN_DATA, ./data (copy the four IDX files into data/fashion-mnist/), the
# user cache or /usr/share/datasets/fashion-mnist.
# Knobs: GPU_CHECK_STEPS="tests bench pipeline" (add "seeds" for step 4), GPU_CHECK_TESTS=all|gpu
#        (a subset reruns only that part), GPU_CHECK_CONFIGS="lenet5_fmnist_filter_admm ...",
#        GPU_CHECK_SEEDS="1 2 3 4 5", GPU_CHECK_SEED_CONFIGS="lenet5_fmnist_filter_admm ...",
#        GPU_CHECK_BATCHES=300, GPU_CHECK_ROUNDS=3, GPU_CHECK_PYTEST_ARGS, GPU_CHECK_BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-./gpu_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
STEPS=${GPU_CHECK_STEPS:-tests bench pipeline}
CONFIGS=${GPU_CHECK_CONFIGS:-lenet5_fmnist_filter_admm lenet5_fmnist_channel_admm}
BATCHES=${GPU_CHECK_BATCHES:-300}
ROUNDS=${GPU_CHECK_ROUNDS:-3}
SEEDS=${GPU_CHECK_SEEDS:-1 2 3 4 5}
SEED_CONFIGS=${GPU_CHECK_SEED_CONFIGS:-$(for kind in filter channel; do
  for method in admm magnitude ssl scratch; do echo -n "lenet5_fmnist_${kind}_$method "; done; done)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-4}
if [ -z "${MINIDNN_DATA:-}" ] && [ -d data ]; then
  export MINIDNN_DATA="$PWD/data"
fi

failed=()
declare -A status

log() { echo "== gpu_check: $*" | tee -a "$OUT/gpu_check.log"; }

# run NAME COMMAND...: run it with its output on screen and in $OUT/NAME.log; note a failure
run() {
  local name=$1
  shift
  log "$name: $*"
  if "$@" 2>&1 | tee "$OUT/$name.log"; then
    status[$name]=ok
  else
    status[$name]=failed
    failed+=("$name")
  fi
  log "$name: ${status[$name]}"
}

preflight() {
  if ! command -v nvidia-smi >/dev/null; then
    echo "no nvidia-smi on PATH: this machine has no NVIDIA driver" >&2
    return 1
  fi
  nvidia-smi || return 1
  "$PYTHON" - <<'EOF'
import platform, sys
from minidnn import backend
import kernels
print("python", platform.python_version(), "| numba:", kernels.NUMBA_AVAILABLE)
if backend.cp is None:
    sys.exit("CuPy is not importable: install cupy-cuda12x or cupy-cuda13x")
print("cupy", backend.cp.__version__, "| CUDA runtime", backend.cp.cuda.runtime.runtimeGetVersion())
if not backend.GPU_AVAILABLE:
    sys.exit("CuPy sees no GPU (cupy.cuda.runtime.getDeviceCount() failed or returned 0)")
try:
    import torch
    print("torch", torch.__version__, "| cuda:", torch.cuda.is_available())
except ImportError:
    print("torch not installed: the benchmark will time minidnn only")
EOF
}

# bench BATCH: one train_speed run; its last stdout line is the JSON object
bench() {
  local json="$OUT/train_speed_cuda_b$1.json"
  # shellcheck disable=SC2086
  "$PYTHON" benchmarks/train_speed.py --device cuda --json --profile --batch-size "$1" \
    --batches "$BATCHES" --rounds "$ROUNDS" ${GPU_CHECK_BENCH_ARGS:-} >"$json.out" || return 1
  tail -n 1 "$json.out" >"$json" && rm -f "$json.out"
  "$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps(r))' "$json"
}

# pipeline: the shipped CONFIGS through every phase on the GPU, timed; results to $OUT/reproduce
pipeline() {
  local runs start
  runs=$(mktemp -d)
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$PYTHON" -m admm reproduce --all --only $CONFIGS --out "$runs" --device cuda || return 1
  mkdir -p "$OUT/reproduce"
  echo "{\"configs\": \"$CONFIGS\", \"wall_s\": $(( $(date +%s) - start ))}" \
    >"$OUT/reproduce/wall.json"
  cp "$runs/results.json" "$runs/results.md" "$OUT/reproduce/"
  for config in $CONFIGS; do cp "$runs/$config/state.json" "$OUT/reproduce/$config.state.json"; done
  cat "$OUT/reproduce/wall.json"
}

# seeds: SEED_CONFIGS over SEEDS on the GPU, one process per seed; the study to $OUT/seeds
seeds() {
  local runs seed
  runs=$(mktemp -d)
  # shellcheck disable=SC2086
  "$PYTHON" -m admm reproduce --all --only $SEED_CONFIGS --seeds $SEEDS --jobs "$(wc -w <<<"$SEEDS")" \
    --out "$runs" --device cuda || return 1
  mkdir -p "$OUT/seeds"
  cp "$runs/seeds.json" "$runs/seeds.md" "$runs/seeds.png" "$OUT/seeds/"
  for seed in $SEEDS; do
    cp "$runs/seed$seed/results.json" "$OUT/seeds/results_seed$seed.json"
    cp "$runs/seed$seed.log" "$OUT/seeds/"
  done
  cat "$OUT/seeds/seeds.md"
}

: >"$OUT/gpu_check.log"
run nvidia-smi preflight
if [ "${status[nvidia-smi]}" != ok ]; then
  log "no usable GPU here (see $OUT/nvidia-smi.log); nothing else was run"
  exit 2
fi
for step in $STEPS; do
  case $step in
    tests)
      # shellcheck disable=SC2086
      select=()
      if [ "${GPU_CHECK_TESTS:-all}" = gpu ]; then
        select=(-k "cupy or cuda or gpu or mixing_devices")
      fi
      run pytest "$PYTHON" -m pytest -q "${select[@]+"${select[@]}"}" ${GPU_CHECK_PYTEST_ARGS:-}
      if grep -q "CuPy with a GPU is not available" "$OUT/pytest.log"; then
        log "pytest: the CuPy cases skipped although CuPy sees a GPU"
        failed+=(pytest-cupy-cases-skipped)
      fi ;;
    bench) run train_speed_b64 bench 64; run train_speed_b256 bench 256 ;;
    pipeline) run reproduce_cuda pipeline ;;
    seeds) run seed_study seeds ;;
    *) log "unknown step '$step' in GPU_CHECK_STEPS (expected: tests bench pipeline seeds)"; exit 2 ;;
  esac
done

"$PYTHON" - "$OUT" "${failed[@]+"${failed[@]}"}" <<'EOF' | tee -a "$OUT/gpu_check.log"
import json, sys
from pathlib import Path
out, failed = Path(sys.argv[1]), sys.argv[2:]
summary = {"failed_steps": failed, "target_ratio": 1.2, "train_speed": {}}
for batch in (64, 256):
    path = out / f"train_speed_cuda_b{batch}.json"
    if path.is_file():
        r = json.loads(path.read_text())
        ratio = r.get("ratio")
        summary["train_speed"][batch] = {
            "minidnn_epoch_s": r["minidnn_epoch_s"], "torch_epoch_s": r["torch_epoch_s"],
            "ratio": ratio, "target_met": None if ratio is None else ratio <= 1.2, "gpu": r.get("gpu")}
wall = out / "reproduce" / "wall.json"
if wall.is_file():
    results = json.loads((out / "reproduce" / "results.json").read_text())
    summary["reproduce"] = {**json.loads(wall.read_text()), "dense_accuracy": results["dense"]["accuracy"],
                            "runs": [{k: r[k] for k in ("name", "device", "accuracy", "accuracy_drop",
                                                        "conv_mac_reduction", "measured_speedup")}
                                     for r in results["runs"]]}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary))
EOF
if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED: ${failed[*]} (logs in $OUT)"
  exit 1
fi
log "all steps passed (logs and JSON in $OUT)"
