#!/usr/bin/env bash
# Device check of measureflow on a machine with a CUDA GPU (issue 17).
#
#   bash benchmarks/device.sh [OUT_DIR] [--quick]
#
# 1. Detects CUDA through torch; without a usable GPU it prints why and exits 0.
# 2. Runs the GPU-marked tests (pytest -m gpu: tests/gpu/, CPU vs CUDA on the same problems).
# 3. Runs the engine benchmarks on CUDA (--device cuda):
#      benchmarks/sinkhorn_vs_peers.py  (measureflow vs GeomLoss on the same GPU; OTT-JAX and
#                                        POT are CPU-only here, so they are left out),
#      benchmarks/divergence_flow.py    (Sinkhorn-divergence gradient flow, float32),
#      benchmarks/attention_stream.py   (streamed attention vs torch SDPA, peak CUDA memory).
# Every step writes OUT_DIR/<step>.log (default OUT_DIR: device-check-<date>) and its exit
# status to OUT_DIR/status.txt; the script exits with the number of failed steps (0 = all ok).
# --quick runs the benchmarks at their small sizes (minutes instead of tens of minutes).
# Environment: PYTHON (default: .venv/bin/python if present, else python3), TIMEOUT_S (per
# step, default 1800).

set -u
cd "$(dirname "$0")/.." || exit 1

OUT=""
QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) OUT="$arg" ;;
    esac
done
OUT="${OUT:-device-check-$(date +%Y%m%d-%H%M%S)}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TIMEOUT_S="${TIMEOUT_S:-1800}"

if ! command -v "$PYTHON" >/dev/null 2>&1 && [ ! -x "$PYTHON" ]; then
    echo "device.sh: no Python interpreter ($PYTHON); nothing to check"
    exit 0
fi
if ! info=$("$PYTHON" -c '
import torch
if not torch.cuda.is_available():
    raise SystemExit(1)
print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
' 2>/dev/null); then
    echo "device.sh: no CUDA device visible to torch ($PYTHON); skipping the device checks"
    exit 0
fi

mkdir -p "$OUT"
echo "device.sh: $info" | tee "$OUT/device.txt"
nvidia-smi >>"$OUT/device.txt" 2>&1 || true
: >"$OUT/status.txt"
failed=0

step() {  # step NAME COMMAND...
    local name="$1"; shift
    echo "== $name: $*"
    local t0=$SECONDS
    timeout "$TIMEOUT_S" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$OUT/status.txt"
    tail -n 15 "$OUT/$name.log"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

step tests_gpu "$PYTHON" -m pytest -m gpu tests -q -p no:cacheprovider -rs

if [ "$QUICK" -eq 1 ]; then
    step sinkhorn_vs_peers "$PYTHON" benchmarks/sinkhorn_vs_peers.py --device cuda \
        --sizes 1000 4000 --dtypes float64 float32 --no-ott --no-pot
    step divergence_flow "$PYTHON" benchmarks/divergence_flow.py --device cuda --quick
    step attention_stream "$PYTHON" benchmarks/attention_stream.py --device cuda --quick
else
    step sinkhorn_vs_peers "$PYTHON" benchmarks/sinkhorn_vs_peers.py --device cuda \
        --no-ott --no-pot
    step divergence_flow "$PYTHON" benchmarks/divergence_flow.py --device cuda
    step attention_stream "$PYTHON" benchmarks/attention_stream.py --device cuda
fi

echo "device.sh: $failed failed step(s); logs in $OUT/"
exit "$failed"
