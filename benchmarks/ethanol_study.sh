#!/usr/bin/env bash
# The ethanol study of docs/results.md: MSE vs CRMSE vs the lambda = 0 control, sampled at 500 K.
#
# Usage: benchmarks/ethanol_study.sh MODEL_RUN TAG [UPDATES] [CHAINS]
#   MODEL_RUN  a finished pretrain run (e.g. eth-mse-n1000-s0)
#   TAG        prefix of the run names this script creates
# Every step is a registry run; set CRMSE_HOME to the workspace. One torch thread per process.
set -euo pipefail
MODEL=$1; TAG=$2; UPDATES=${3:-200}; CHAINS=${4:-32}
P="${CRMSE:-.venv/bin/python -m crmse_cli.cli.app} --threads 1"
SAMPLE="--replicas 64 --steps 20000 --record-every 20 --temperature-K 500 --seed 0"

$P regularize --from "$MODEL" --lambda 0.015 --chains "$CHAINS" --updates "$UPDATES" --name "$TAG-crmse" &
$P regularize --from "$MODEL" --lambda 0 --chains "$CHAINS" --updates "$UPDATES" --name "$TAG-lambda0" &
wait
$P sample "$MODEL" $SAMPLE --name "$TAG-md-mse" &
$P sample "$TAG-crmse" $SAMPLE --name "$TAG-md-crmse" &
wait
$P sample "$TAG-lambda0" $SAMPLE --name "$TAG-md-lambda0"
for s in mse crmse lambda0; do $P evaluate "$TAG-md-$s" --name "$TAG-eval-$s"; done
$P compare "$TAG-md-mse" "$TAG-md-crmse" "$TAG-md-lambda0" --out "docs/report-$TAG.html" \
  --title "ethanol $TAG: MSE vs CRMSE vs lambda=0"
