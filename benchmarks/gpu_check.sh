#!/usr/bin/env bash
# The GPU check in one command, from a fresh clone on a machine with an NVIDIA GPU (< 8 min):
#   1. a virtual environment ($VENV, default .venv) with CUDA torch: an already installed torch
#      is reused (the venv sees the system's packages), else $TORCH_SPEC from PyPI (its Linux
#      wheel is a CUDA build; set TORCH_INDEX=https://download.pytorch.org/whl/cu126 for a
#      specific CUDA), then this package with its dev extra and timm (test-only, --no-deps);
#   2. the CUDA tests (pytest -m cuda: mixed precision with GradScaler, compile, CUDA graphs,
#      NCCL DDP in one process, the CPU fast path stepping aside);
#   3. benchmarks/gpu_check.py: Mixer-B/16 bf16 at batch 256, ours vs timm, eager and
#      compiled, MFU against the measured bf16 matmul peak; then fp8 (torchao float8) against
#      bf16 inference, eager and compiled: speed ratio, top-1 agreement, max |logit difference|
#      (skipped, with the reason, below compute capability 8.9) -> one JSON ($OUT).
# Usage: benchmarks/gpu_check.sh [--dry-run | --help]   (--dry-run: no install, CPU, tiny model,
# its JSON in a temporary file unless OUT is set)
# Exit status: 0 all tests passed and the JSON written; 1 a test (or the fp8 step) failed;
# 2 no GPU or bad setup.
# Targets (benchmarks/gpu_check.py TARGETS): B/16 bf16 MFU >= 0.65 inference, >= 0.45 training,
# our best step >= 1.05x torch.compile(timm)'s.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch}
TORCH_INDEX=${TORCH_INDEX:-}
OUT=${OUT:-}
DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run | --help]" >&2; exit 2 ;;
esac
if [ -z "$OUT" ] && [ "$DRY_RUN" = 1 ]; then  # a CPU stand-in's numbers stay out of results/
  OUT=$(mktemp -t gpu-check-dry-run-XXXXXX.json)
fi
OUT=${OUT:-benchmarks/results/gpu-check-$(date -u +%Y%m%d-%H%M%S).json}
PY=$VENV/bin/python
step() { echo "== $* ($(date -u +%T))" >&2; }

if [ "$DRY_RUN" = 0 ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi -L >&2 || echo "warning: no nvidia-smi" >&2
  step "environment $VENV"
  test -x "$PY" || "$PYTHON" -m venv --system-site-packages "$VENV"
  if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    step "installing $TORCH_SPEC ${TORCH_INDEX:+from $TORCH_INDEX}"
    # --ignore-installed: a CPU-only torch of the system must not satisfy the requirement
    "$PY" -m pip install -q --ignore-installed $TORCH_SPEC ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
  fi
  "$PY" -m pip install -q -e ".[dev]"
  "$PY" -m pip install -q --no-deps timm || echo "warning: timm not installed: no timm rows" >&2
  if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" >&2
    echo "error: this torch sees no CUDA device; set TORCH_SPEC/TORCH_INDEX to a CUDA build" >&2
    exit 2
  fi
fi

JUNIT=$(mktemp -t gpu-check-tests-XXXXXX.xml)
trap 'rm -f "$JUNIT"' EXIT
step "CUDA tests"
set +e
"$PY" -m pytest -m cuda -n 0 -q -p no:cacheprovider --junitxml="$JUNIT" tests
TESTS=$?
set -e
[ "$TESTS" -le 1 ] || [ "$TESTS" -eq 5 ] || { echo "error: pytest exit $TESTS" >&2; exit 2; }

step "benchmark -> $OUT"
ARGS=(--junit "$JUNIT" --out "$OUT")
[ "$DRY_RUN" = 1 ] && ARGS+=(--dry-run)
"$PY" benchmarks/gpu_check.py "${ARGS[@]}"
