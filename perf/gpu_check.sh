#!/usr/bin/env bash
# perf/gpu_check.sh [OUT.md]: the GPU checks of the benchmark in one go, in under 8 minutes on
# one GPU, written as one markdown file (default perf/gpu_check.md) and printed:
#   1. the tests that need a GPU (the device CAM backend on CUDA, bf16) and the device checks;
#   2. `python -m perf --device cuda` with small settings (the limit per execution, the cases);
#   3. `python -m perf.chunks --device cuda` (the CUDA curve chunk default comes from it);
#   4. with two or more GPUs: the same Grad-CAM run on 1 and on 2 GPUs (DDP), compared per image.
# Without a CUDA GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-perf/gpu_check.md}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "perf/gpu_check.sh: no CUDA GPU is visible to PyTorch; nothing to check"
    exit 0
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

section() { printf '\n## %s\n\n' "$1"; }
{
    echo "# GPU check, $(date -u +%Y-%m-%d): $NAME x $GPUS, torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')"

    section "Tests that need a GPU (pytest)"
    echo '```'
    timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/methods/test_cam_device.py tests/models/test_precision_bf16.py \
        tests/models/test_execution.py 2>&1 | tail -4
    echo '```'

    # three limit batch sizes (each is a compile of the compiled execution); 128 = the CUDA chunk
    section "python -m perf --device cuda (batch 8, 5 LOTS iterations, 28 curve steps)"
    timeout 240 "$PY" -m perf --device cuda --batch-size 8 --lots-iterations 5 --n-steps 28 \
        --limit-batch-sizes 8,32,128 \
        --methods gradcam,layercam,xgradcam,scorecam,smoothgradcampp --json "$WORK/perf.json" 2>/dev/null \
        || echo "(perf did not finish in 240 s)"

    section "python -m perf.chunks --device cuda (images per forward along the curves)"
    timeout 90 "$PY" -m perf.chunks --device cuda --chunk-sizes 16,32,64,128,256 2>/dev/null \
        || echo "(perf.chunks did not finish in 90 s)"

    if [ "$GPUS" -ge 2 ]; then
        section "Grad-CAM on 1 GPU and on 2 GPUs (DDP), 16 images"
        ARGS=(test --method gradcam --limit 16 --batch-size 4 --metrics.n_steps 28 --logger none
              --overlay-images 0 --accelerator gpu)
        timeout 120 "$PY" -m benchmark "${ARGS[@]}" --devices 1 --output "$WORK/one" >/dev/null 2>"$WORK/one.err"
        timeout 150 "$PY" -m benchmark "${ARGS[@]}" --devices 2 --output "$WORK/two" >/dev/null 2>"$WORK/two.err"
        "$PY" - "$WORK" <<'PYEOF'
import csv, glob, json, sys
work = sys.argv[1]
runs = {}
for name in ("one", "two"):
    folders = glob.glob(f"{work}/{name}/gradcam_*")
    if not folders:
        print(f"- the {name}-GPU run wrote no run folder (see its stderr)")
        sys.exit(0)
    runs[name] = (json.load(open(f"{folders[0]}/results.json")), list(csv.DictReader(open(f"{folders[0]}/per_sample.csv"))))
print("| metric | 1 GPU mean | 2 GPUs mean | largest per-image difference |")
print("|---|---:|---:|---:|")
for key in runs["one"][0]["metrics"]:
    diff = max(abs(float(a[key]) - float(b[key])) for a, b in zip(runs["one"][1], runs["two"][1]))
    print(f"| {key} | {runs['one'][0]['metrics'][key]:.4f} | {runs['two'][0]['metrics'][key]:.4f} | {diff:.2e} |")
print(f"\nprocesses: {runs['one'][0]['processes']} and {runs['two'][0]['processes']}; "
      f"devices: {runs['one'][0]['device']}, {runs['two'][0]['device']}; gpu: {runs['two'][0].get('gpu')}")
PYEOF
    else
        section "DDP"
        echo "one GPU only: the 2-GPU comparison needs two"
    fi
} 2>&1 | tee "$OUT"
