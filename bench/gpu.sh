#!/usr/bin/env bash
# GPU figures for docs/SPEED.md, on a machine with onnxruntime-gpu (CUDA) and facewise importable:
#
#     bash bench/gpu.sh OUTDIR [--onnx FILE ...]      # FACEWISE_MODEL_PATH / FACEWISE_DATA as for the tests
#
# 1. bench/providers.py: every ONNX model's items/s on CUDA and on the CPU, in one process, batch 1/16/64;
# 2. bench/pipeline.py and bench/video.py on bench/gpu-onnx.json (SCRFD-2.5g + MobileFaceNet-128, every model
#    on onnxruntime) with FACEWISE_PROVIDERS=cuda,cpu and then =cpu: images/s and video frames/s, end to end.
# The shipped profiles' OpenVINO models (YuNet in fast, reid-0095, MobileFaceNet y1) have no NVIDIA plug-in and
# stay on the CPU; dlib's ResNet (default, accurate, accurate-commercial) and FSA-Net are the models CUDA speeds up.
set -euo pipefail
out=${1:?usage: bash bench/gpu.sh OUTDIR [--onnx FILE ...]}
shift
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "no nvidia-smi") > "$out/gpu.txt"
nproc >> "$out/gpu.txt"
python3 "$here/providers.py" --providers cuda,cpu --batches 1,16,64 --seconds 1 --json "$@" > "$out/providers.json"
for p in cuda,cpu cpu; do
  tag=${p%%,*}
  FACEWISE_PROVIDERS=$p python3 "$here/pipeline.py" --images 120 --profiles "$here/gpu-onnx.json" --workers 4 \
    --json > "$out/pipeline-$tag.json"
  FACEWISE_PROVIDERS=$p python3 "$here/video.py" --profile "$here/gpu-onnx.json" --skip-naive --repeat 3 \
    > "$out/video-$tag.txt" 2>&1
done
echo "results in $out"
