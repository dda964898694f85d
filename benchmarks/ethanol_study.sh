#!/usr/bin/env bash
# The ethanol study of docs/results.md: MSE vs CRMSE vs the lambda = 0 control, sampled at 500 K.
#
# Usage: benchmarks/ethanol_study.sh MODEL_RUN TAG [UPDATES] [CHAINS] [SEED] [STEPS]
#   MODEL_RUN  a finished pretrain run (e.g. eth-mse-n1000-s0)
#   TAG        prefix of the run names this script creates (TAG-crmse, TAG-md-mse, ...)
#   UPDATES    CRMSE parameter updates (default 200); CHAINS persistent chains (default 32)
#   SEED       seed of regularize and sample (default 0); STEPS Langevin steps (default 20000 = 10 ps)
# Environment: CONTROL=0 skips the lambda = 0 control; TEMP=700 samples (and runs the CRMSE
# chains) at 700 K instead of 500 K; LAMBDA (default 0.015, in the paper's eV convention since
# 2026-12-02) and REG_EXTRA (more regularize options, e.g. "--chain-sampler mala") set CRMSE;
# MSE=0 skips the MSE sample (when another TAG already sampled the same model).
# Every step is a registry run; a step whose run already completed is skipped, so the script can
# be rerun after an interruption. Two lanes run side by side, one torch thread each.
# Set CRMSE_HOME to the workspace and CRMSE to the command (default: .venv/bin/crmse).
set -euo pipefail
MODEL=$1; TAG=$2; UPDATES=${3:-200}; CHAINS=${4:-32}; SEED=${5:-0}; STEPS=${6:-20000}
C="${CRMSE:-.venv/bin/crmse}"
export CRMSE_NO_PROGRESS=1
CONTROL=${CONTROL:-1}; TEMP=${TEMP:-500}; LAMBDA=${LAMBDA:-0.015}; MSE=${MSE:-1}
read -r -a EXTRA <<< "${REG_EXTRA:-}"
SAMPLE=(--replicas 64 --steps "$STEPS" --record-every 20 --temperature-K "$TEMP" --seed "$SEED")
REG=(--chains "$CHAINS" --updates "$UPDATES" --seed "$SEED" --temperature-K "$TEMP" "${EXTRA[@]}")

done_() {  # true when the run NAME exists and completed
  $C --json show "$1" 2>/dev/null | python3 -c \
    "import json,sys; sys.exit(0 if json.load(sys.stdin)['run']['status']=='completed' else 1)" 2>/dev/null
}
step() {  # step NAME -- crmse arguments...: run unless NAME completed
  local name=$1; shift 2
  if done_ "$name"; then echo "skip $name (completed)"; return; fi
  echo "$(date -u +%H:%M:%S) start $name"
  $C --threads 1 "$@" --name "$name"
  echo "$(date -u +%H:%M:%S) done $name"
}

lane_a() {
  step "$TAG-crmse" -- regularize --from "$MODEL" --lambda "$LAMBDA" "${REG[@]}"
  step "$TAG-md-crmse" -- sample "$TAG-crmse" "${SAMPLE[@]}"
  step "$TAG-eval-crmse" -- evaluate "$TAG-md-crmse"
}
lane_b() {
  if [ "$MSE" = 1 ]; then
    step "$TAG-md-mse" -- sample "$MODEL" "${SAMPLE[@]}"
    step "$TAG-eval-mse" -- evaluate "$TAG-md-mse"
  fi
  if [ "$CONTROL" = 0 ]; then return; fi
  step "$TAG-lambda0" -- regularize --from "$MODEL" --lambda 0 "${REG[@]}"
  step "$TAG-md-lambda0" -- sample "$TAG-lambda0" "${SAMPLE[@]}"
  step "$TAG-eval-lambda0" -- evaluate "$TAG-md-lambda0"
}
lane_a > "${CRMSE_HOME:-.}/$TAG-lane-a.log" 2>&1 &
lane_b > "${CRMSE_HOME:-.}/$TAG-lane-b.log" 2>&1 &
wait
RUNS=("$TAG-md-crmse")
if [ "$MSE" != 0 ]; then RUNS=("$TAG-md-mse" "${RUNS[@]}"); fi
if [ "$CONTROL" != 0 ]; then RUNS+=("$TAG-md-lambda0"); fi
$C compare "${RUNS[@]}" --out "docs/report-$TAG.html" --title "ethanol $TAG: MSE vs CRMSE (vs lambda=0), $TEMP K"
