#!/usr/bin/env bash
# The first real run of the verl path, in one command, on one GPU (an H100 is plenty):
#   bash training/gpu_smoke.sh              # install vLLM + verl, build the smoke model, prepare
#                                           # synthetic parquet, 3 GRPO steps (tools, label-free
#                                           # reward with CCA, EVR reground), write smoke.json
#   bash training/gpu_smoke.sh --no-install # the same in an environment that has them
#   bash training/gpu_smoke.sh --dry-run    # on CPU: everything up to the first GPU call
#   bash training/gpu_smoke.sh --out DIR    # another output folder (default runs/gpu_smoke)
# Options after these go to run_verl.py as hydra overrides (key=value). Output: runs/gpu_smoke/
# (smoke.json: per step reward, tool-call rate, response length, generation tokens/s, step
# time, peak GPU memory). The install needs PyPI; see docs/training_verl.md for machines
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# verl 0.9.1's own vllm extra: vllm 0.24.0, torch 2.11.0, torchvision 0.26.0, transformers 5.9.0
VERL_ROLLOUT=${VERL_ROLLOUT:-"verl[vllm]==0.9.1"}
install=1
dry=()
out=(--out runs/gpu_smoke)
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=(--dry-run); install=0 ;;
    --no-install) install=0 ;;
    --out) out=(--out "${2:?--out needs a folder}"); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --*) echo "gpu_smoke.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) overrides+=("$1") ;;
  esac
  shift
done
if [ "$install" = 1 ]; then
  "$PYTHON" -m pip install -q -e ".[verl]" "$VERL_ROLLOUT"
fi
if [ ${#dry[@]} = 0 ]; then
  "$PYTHON" - <<'PY'
import sys
try:
    import torch
except ImportError:
    sys.exit("gpu_smoke.sh: torch is not installed")
if not torch.cuda.is_available():
    sys.exit("gpu_smoke.sh: no CUDA GPU; use --dry-run on CPU")
print(f"gpu_smoke.sh: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PYTHON" training/run_verl.py --smoke "${out[@]}" "${dry[@]}" "${overrides[@]}"
