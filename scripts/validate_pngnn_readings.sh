#!/usr/bin/env bash
# PN-GNN's Dual-BPR reading and b, chosen on validation only (issue 31 item 1): one `pngnn tune`
# trial per cell on split seed 1's validation part (10% of train; the test part is dropped before
# the study starts), the paper profile, validation NDCG@20 every 5 epochs, best epoch kept. Each
# cell's study record lands in results/tuning/ml-1m/pngnn-readings/<cell>/seed1_study.json; a cell
# whose record exists is skipped, so the script resumes where a stopped session left it.
# Run from the repository root with the venv active: nohup nice -n 10 bash scripts/validate_pngnn_readings.sh &
set -euo pipefail
OUT=results/tuning/ml-1m/pngnn-readings
export PNGNN_TORCH_THREADS=${PNGNN_TORCH_THREADS:-1}
CELLS=${CELLS:-"weighted:4 branch:2 siren:2 weighted:2 weighted:8 siren:1 graded:0 ordered:2 branch:1 branch:4 weighted:4:edges"}
for cell in $CELLS; do
  # reading:b, or reading:b:sampling for a cell with another pair sampler than the default (users)
  IFS=: read -r reading b sampling <<< "$cell"
  suffix=${sampling:+-$sampling}
  name="pngnn-readings-${reading}-b${b}${suffix}"
  dest="$OUT/${reading}-b${b}${suffix}"
  [ -f "$dest/seed1_study.json" ] && { echo "skip $name (done)"; continue; }
  marker=$(mktemp); mkdir -p "$dest"
  echo "$(date -u +%FT%TZ) start $name"
  pngnn tune --method pngnn --dataset ml-1m --seed 1 --trials 1 --no-test --epochs 60 \
    --set dual_bpr="$reading" --set b="$b" ${sampling:+--set pair_sampling="$sampling"} --save-as "$name" 2>&1 \
    | tail -n 30 > "$dest/tune.log"
  study=$(find pngnn-data -path '*tuning/seed1_study.json' -newer "$marker" | head -n 1)
  [ -n "$study" ] || { echo "no study record for $name" >&2; exit 1; }
  cp "profiles/$name.json" "$dest/profile.json"
  cp "$study" "$dest/seed1_study.json"
  rm -f "$marker"
  echo "$(date -u +%FT%TZ) done $name"
done
