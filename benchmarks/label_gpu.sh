#!/usr/bin/env bash
# `tessera label` vs the same jitted model in a plain loop, images/s on one GPU (issue 17):
# PaliGemma 2 3B at 224 px ('caption en', 16 answer tokens) and SigLIP So400m/14 224 (zero-shot,
# 8 classes), batch 64, on random real-size bfloat16 checkpoints written here first
# (benchmarks/random_checkpoints.py; real weights are never fetched). Target ratio >= 0.9.
#
#   bash benchmarks/label_gpu_wheels.sh        # here, once: Beam's wheels into .whl/ (~37 MB)
#   bash benchmarks/label_gpu.sh               # device machine (carry .whl); results in $OUT
#   bash benchmarks/label_gpu.sh --tiny        # CPU dry run: tiny configs, a few images
#
# Writes $OUT/label_gpu.log, $OUT/checkpoints.jsonl, one benchmarks/label.py JSON per model and
# $OUT/summary.txt (one line per model). Both models run even if the first fails; exit 1 if any
# failed or missed the target. Sizes can be overridden: PG_IMAGES, SL_IMAGES, REPEATS, DECODE.
set -uo pipefail
cd "$(dirname "$0")/.."
TINY=0; [[ "${1:-}" == "--tiny" ]] && TINY=1
OUT=${OUT:-out/bench/label_gpu}
WORK=${WORK:-$(mktemp -d /tmp/label_gpu.XXXXXX)}
PY=${PYTHON:-python3}
mkdir -p "$OUT" && rm -f "$OUT"/label_*.json "$OUT"/label_gpu.log "$OUT"/checkpoints.jsonl
exec > >(tee -a "$OUT/label_gpu.log") 2>&1
export PYTHONUNBUFFERED=1

# Beam is not in the device image: install the carried wheels for this run only
if ! "$PY" -c "import apache_beam" 2>/dev/null; then
  WHEELS=${WHEELS:-.whl}
  ls "$WHEELS"/*.whl >/dev/null 2>&1 \
      || { echo "no apache_beam and no $WHEELS/ (run label_gpu_wheels.sh)"; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$WORK/site" "$WHEELS"/*.whl || exit 2
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The tessera.* names without installing the repo: a package whose folders link to the repo's,
# imported first (-P: the repo root, whose tessera/ holds only the top modules, comes later)
pyrun() { "$PY" "$@"; }
if ! "$PY" -c "import tessera.models" 2>/dev/null; then
  mkdir -p "$WORK/shim/tessera" && cp tessera/*.py "$WORK/shim/tessera/"
  for d in schemas transforms models training pipelines; do
    ln -sfn "$PWD/$d" "$WORK/shim/tessera/$d"
  done
  export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
  pyrun() {
    "$PY" -P -c 'import runpy, sys, tessera.models; sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$@"
  }
fi

if (( TINY )); then
  PG=paligemma-tiny SL=siglip-tiny BATCH=4 SIZE=56 TARGET=0  # plumbing only
  : "${PG_IMAGES:=8}" "${SL_IMAGES:=16}" "${REPEATS:=1}" "${DECODE:=4}"
else
  PG=paligemma2-3b-224 SL=siglip-so400m-224 BATCH=64 SIZE=224 TARGET=0.9
  : "${PG_IMAGES:=2048}" "${SL_IMAGES:=8192}" "${REPEATS:=2}" "${DECODE:=16}"
fi
"$PY" -c "import jax, apache_beam as b; print(jax.__version__, jax.devices(), b.__version__)" \
    || exit 2
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true

status=0
for family in "$PG" "$SL"; do
  start=$SECONDS
  pyrun benchmarks/random_checkpoints.py --family "$family" --output "$WORK/$family" \
      | tee -a "$OUT/checkpoints.jsonl" || { echo "FAILED: checkpoint $family"; status=1; }
  echo "$family checkpoint: $((SECONDS - start)) s"
done
df -h "$WORK" | tail -1

run() {  # name, then benchmarks/label.py flags
  local name=$1; shift
  local start=$SECONDS
  pyrun benchmarks/label.py --batch-size "$BATCH" --image-size "$SIZE" --repeats "$REPEATS" \
      --reuse-model --runner FnApiRunner --target "$TARGET" --out "$OUT/label_$name.json" "$@" \
      || status=1
  echo "$name: $((SECONDS - start)) s"
}
run "${PG//-/_}" --model "paligemma:$WORK/$PG" --prompt "caption en" --max-decode-len "$DECODE" \
    --images "$PG_IMAGES"
run "${SL//-/_}" --model "siglip:$WORK/$SL" --images "$SL_IMAGES" \
    --classes "cat,dog,car,tree,house,person,boat,bird"
rm -rf "$WORK"

"$PY" - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "label_*.json"))):
    r = json.load(open(path))
    ok = r["ratio"] >= r["target"] and r["labelled"] == r["images"] * r["repeats"]
    print(f"{r['model'].split(':')[0]} {os.path.basename(path)[6:-5]} on {r['device']}: "
          f"{r['images']} images x {r['repeats']}, batch {r['batch_size']}: loop "
          f"{r['loop_images_per_s']:.1f} img/s, pipeline {r['pipeline_images_per_s']:.1f} img/s, "
          f"ratio {r['ratio']:.3f} (target {r['target']}) {'PASS' if ok else 'FAIL'}; load "
          f"{r['load_seconds']:.1f} s, compile {r['warmup_seconds']:.1f} s")
EOF
exit $status
