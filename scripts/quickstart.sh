#!/usr/bin/env bash
# The README's first command: install, build, and run the main job on the default model
# (../shared's stories260K when present, else a Hugging Face hub id).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

model=../shared/models/stories260K/stories260K.gguf
[[ -f $model ]] || model=${OPTIQ_DEFAULT_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
mkdir -p out
./build/optiq info "$model"
./build/optiq convert "$model" -o "out/$(basename "${model%.gguf}")-optiq"
