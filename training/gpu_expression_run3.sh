#!/usr/bin/env bash
# Prepared, NOT yet run (no GPU in the session that wrote it). One call to a GPU machine (~8 min of an
# H100): does a wider member pair beat the shipped four narrow members at the same CPU cost?
#   arm A: 2 members at widths 48/96/192/384 (2.25x a narrow member's multiply-adds each; the pair costs
#          about what the shipped 4-member graph costs on CPU, ~16-18 ms per face);
#   arm B: 2 more narrow members (seeds 8, 9) so 6-member subsets can be compared too.
# Run from the repository root after `python training/pack_fer2013.py --data-dir ../shared/data/fer2013
# --out .gpu/fer2013_jpeg.npz` here, with .gpu carried to the machine. Afterwards, here on CPU:
#   python training/train_expression.py --data-dir ../shared/data/fer2013 --out out/expression/wide2 \
#     --ensemble keep/w10.pt keep/w11.pt --no-flip --fp16-weights   # keep/ = $OUT/keep copied back
#   python -m facewise.cli eval expression --root ../shared/data/fer2013/validation   (with the graph swapped in)
# and keep a graph only if it beats 71.66 % on PublicTest at <= 20 ms per face (bench: training/README.md).
set -euo pipefail
OUT=${OUT:-/tmp/fer3}
mkdir -p "$OUT/barrier"
common="--data-dir .gpu/fer2013_jpeg.npz --device cuda --time-budget 420 --deadline 470 --no-export \
        --barrier-dir $OUT/barrier --barrier-n 4"
for s in 10 11; do
  python3 training/train_expression.py $common --out "$OUT/w$s" --seed "$s" --widths 48 96 192 384 \
    > "$OUT/log_w$s.txt" 2>&1 &
done
for s in 8 9; do
  python3 training/train_expression.py $common --out "$OUT/m$s" --seed "$s" > "$OUT/log_m$s.txt" 2>&1 &
done
wait
mkdir -p "${OUT_KEEP:-$OUT/keep}"
for d in w10 w11 m8 m9; do cp "$OUT/$d/model.pt" "${OUT_KEEP:-$OUT/keep}/$d.pt"; tail -3 "$OUT/log_$d.txt"; done
