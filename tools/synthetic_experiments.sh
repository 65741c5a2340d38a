#!/usr/bin/env bash
# Several `tools/synthetic_experiment.py` runs side by side on the GPU machine (after
# tools/device_bundle.sh here; carry .device), each with its share of the CPU cores; results
# in $OUT/run_K.json and logs in $OUT/log_K.txt. Six full-density runs take about 540 s.
#   LIMIT=570 bash tools/synthetic_experiments.sh 'ada|{"offset_weight": 0.1}' 'ben|{}' ...
source tools/device_setup.sh
export PYTHONUNBUFFERED=1
threads=$(( $(nproc) / $# )); [ "$threads" -lt 1 ] && threads=1
k=0
for spec in "$@"; do
  OMP_NUM_THREADS=$threads timeout "${LIMIT:-570}" python tools/synthetic_experiment.py "${spec%%|*}" "${spec#*|}" \
    "$OUT/run_$k.json" > "$OUT/log_$k.txt" 2>&1 &
  k=$((k + 1))
done
wait
for f in "$OUT"/run_*.json; do
  python -c "import json, sys; r = json.load(open(sys.argv[1])); print(r['subject'], r['overrides'], round(r['psnr_heldout'], 2), round(r['iou_heldout'], 4), round(r['psnr_input_view'], 2))" "$f"
done
