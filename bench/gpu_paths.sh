#!/usr/bin/env bash
# The CUDA paths end to end on one GPU (the test suite runs on CPU): fp16 + GradScaler and bf16 training,
# resume/extend of an fp16 run (scaler state), NCCL under torchrun, eval with TTA, infer with pinned memory,
# ONNX export verified against CUDA eager, and `seg benchmark` of the real-time models at 1024x2048 fp16
# (compare with mmseg's BiSeNetV1-R18 31.8 fps and DDRNet-23-slim 85.9 fps, the DDRNet paper's 102 fps).
#
#     PY=python3 bash bench/gpu_paths.sh [WORKDIR]      # from the repository root; needs one CUDA GPU
set -euo pipefail
PY=${PY:-python3}
W=${1:-$(mktemp -d)}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
seg() { "$PY" -m segcli "$@"; }
step() { echo; echo "=== $*"; }
show() { grep -E "$1" || true; }  # the lines worth reading of a command's output

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" -c "import torch, timm, onnxruntime as o; print('torch', torch.__version__, 'timm', timm.__version__, \
'onnxruntime', o.__version__, o.get_available_providers())"

step "prepare shapes"
seg prepare shapes --out "$W/shapes" >/dev/null
common=(data.root="$W/shapes" train.device=cuda train.out_dir="$W/runs" train.log_every=50)

for amp in fp16 bf16; do
  step "train quickstart, amp $amp"
  seg train quickstart "${common[@]}" train.amp="$amp" train.name="$amp" train.epochs=6 | show "epoch|time shares|device"
done

step "extend the fp16 run (optimizer, scaler and EMA state restored on CUDA)"
seg train --resume "$W/runs/fp16/1" --extend train.epochs=8 | show "epoch 8|resum|time shares"

step "torchrun, one process, NCCL"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m segcli train quickstart "${common[@]}" \
  train.amp=fp16 train.name=ddp train.epochs=2 | show "world|nccl|NCCL|epoch 2/2:"

step "eval on CUDA: plain, then flip + multi-scale TTA"
seg eval "$W/runs/fp16/1" --data "$W/shapes" --device cuda --json | "$PY" -c "import json,sys; r=json.load(sys.stdin); print('mIoU', r['mIoU'])"
seg eval "$W/runs/fp16/1" --data "$W/shapes" --device cuda --tta --json | "$PY" -c "import json,sys; r=json.load(sys.stdin); print('mIoU tta', r['mIoU'])"

step "infer on CUDA"
seg infer "$W/runs/fp16/1" "$W/shapes/images/val" --out "$W/pred" --device cuda

step "export to ONNX, parity against CUDA eager"
seg export "$W/runs/fp16/1" --onnx --device cuda | tail -n 6
seg eval "$W/runs/fp16/1/export/model.onnx" --data "$W/shapes" --device cpu --json | "$PY" -c "import json,sys; r=json.load(sys.stdin); print('onnx mIoU', r['mIoU'])"
step "export --half (fp16 graph; needs onnxruntime's CUDA provider)"
seg export "$W/runs/fp16/1" --onnx --half --device cuda --out "$W/half.onnx" | tail -n 6 || echo "(refused, exit $?)"

for preset in bisenet_cityscapes ddrnet23slim_cityscapes segformer_b0_ade20k; do
  step "seg benchmark $preset 1024x2048 fp16"
  seg benchmark "$preset" --size 1024x2048 --amp fp16 --device cuda --iters 50 --no-train --classes 19
done
