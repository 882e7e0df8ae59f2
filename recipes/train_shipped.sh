#!/usr/bin/env bash
# Reproduces the models shipped in magvit2/pretrained/ with the project's own code and
# in-package data only. CPU, 2 cores: one to two hours for the two tokenizers side by side, 3 minutes to
# tokenize the digits, about 40 minutes for the digits LM.
# On GPUs, drop OMP_NUM_THREADS and raise batch sizes / steps (see configs/tokenizer/*.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
M2="${PYTHON:-.venv/bin/python} -m magvit2.cli.main"
export OMP_NUM_THREADS=1

# 1. The general tokenizer (packaged clips + photos, 5x64x64 crops) and the moving-digits tokenizer, in parallel.
$M2 train tokenizer --config small &
$M2 train tokenizer --config digits &
wait

# 2. Tokenize the moving-digits training split (12,000 clips, each training digit about 8 times with
#    different motion; 9 frames at 32x32 -> 3x8x8 tokens of 10 bits).
$M2 tokenize --model runs/digits-tokenizer/export --data digits --frames 9 --resolution 32 --num-samples 12000 \
    --batch-size 64 --shard-size 1000 -o runs/digits-tokens

# 3. The class-conditional masked LM (30% of samples trained with 2 latent frames of context).
OMP_NUM_THREADS=2 $M2 train lm --config digits

# 4. Copy the exports into the package, measure the cards' figures, write the model cards.
${PYTHON:-.venv/bin/python} recipes/publish.py
