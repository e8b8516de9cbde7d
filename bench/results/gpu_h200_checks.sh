#!/bin/bash
# The GPU checks of bench/README's "Training on a GPU: measured" section, run once on a lent NVIDIA
# H200 (its image's python3: torch 2.11 + CUDA 13, transformers 5.17; the project's other missing
# packages installed from wheels carried in .whl/). Usage there: bash bench/results/gpu_h200_checks.sh OUT
OUT=${1:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
LOG=$OUT/gpu_checks.log
CKPT="checkpoint_activations.parts = ('decoder', 'discriminators', 'wavlm', 'diffusion')"
WAVLM="load_wavlm.random_size = 'base'"
step() {  # step SECONDS NAME COMMAND...: one check, its time limit, its output in the log
    local limit=$1 name=$2; shift 2
    echo "=== $name: $*" | tee -a "$LOG"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | grep -v "RANDOM\|random init" | tee -a "$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]}, $((SECONDS - started)) s" | tee -a "$LOG"
}
{ nvidia-smi -L; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } 2>&1 | tee -a "$LOG"
# Every phase of the tiny model on CUDA, with the CPU's count of the same steps beside the allocator's.
step 60 tiny_fp32 python3 -m styletts2.train.gpu_check --batch_size 4 --max_len 80 --count_from_python \
    --gin_param "SLMAdversarial.batch_percentage = 1.0"
step 45 tiny_bf16 python3 -m styletts2.train.gpu_check --batch_size 4 --max_len 80 --precision bf16 \
    --gin_param "SLMAdversarial.batch_percentage = 1.0"
# The LJSpeech model at batch 2: the allocator's count against the Python count, phase by phase.
step 75 ljspeech_b2_counted python3 bench/train_memory.py --model gin/model/ljspeech.gin --batch_size 2 --max_len 400 \
    --phases stage2,diffusion,joint --gin_param "$WAVLM" --gin_param "SLMAdversarial.batch_percentage = 1.0" \
    --count_from_python --json "$OUT/ljspeech_b2_counted.json"
# The fine-tune setting measured at its own batch (the CPU extrapolated it from batches 1-3), upstream's
# SLM batch_percentage 0.5, savings off and on, with step times.
step 80 libritts_b8_off python3 -m styletts2.train.gpu_check --model gin/model/libritts.gin --batch_size 8 --max_len 400 \
    --gin_param "$WAVLM"
step 80 libritts_b8_on python3 -m styletts2.train.gpu_check --model gin/model/libritts.gin --batch_size 8 --max_len 400 \
    --gin_param "$WAVLM" --gin_param "$CKPT"
# Stage 2 at upstream's LJSpeech setting, batch 16.
step 60 ljspeech_b16_off python3 -m styletts2.train.gpu_check --model gin/model/ljspeech.gin --batch_size 16 --max_len 400 \
    --phases stage2,diffusion,joint --gin_param "$WAVLM"
step 60 ljspeech_b16_on python3 -m styletts2.train.gpu_check --model gin/model/ljspeech.gin --batch_size 16 --max_len 400 \
    --phases stage2,diffusion,joint --gin_param "$WAVLM" --gin_param "$CKPT"
echo "=== done" | tee -a "$LOG"

# The second call (gpu_h200_steps.log): the fine-tune setting again, 5 timed steps per phase, to time
# the savings, in bf16 and fp32. It was run as this loop, after the same pip install and exports.
# W="load_wavlm.random_size = 'base'"; C="$CKPT"
# for p in bf16 fp32; do for s in off on; do
#   if [ $s = on ]; then X="$C"; else X="SLMAdversarial.batch_percentage = 0.5"; fi  # 0.5: the default
#   timeout 80 python3 -m styletts2.train.gpu_check --model gin/model/libritts.gin --batch_size 8 --max_len 400 \
#       --precision $p --steps 5 --gin_param "$W" --gin_param "$X" | tee -a $OUT/gpu_checks_steps.log
# done; done
