#!/usr/bin/env bash
# Issue 29's arms on one 200-frame parent per seed: which part of CRMSE's force cost is noise,
# which is signal, does an MSE polish remove it, and what does the --force-budget rule pick.
# Completed runs are skipped, so rerunning resumes (an interrupted regularize is resumed).
#
# Usage: budget_study.sh DATASET TAG "SEEDS" [PHASE]
#   PHASE "train" (default "all"): the pretrain and every regularize arm (force-side numbers);
#   "sample": the 64-replica 10 ps samples and their evaluations; "all": both, seed by seed.
# ARMS (default "l0 c15 null15 pol15 b10") picks the arms:
#   l0      lambda = 0 control (same parent, same inherited Adam moments, same batches)
#   c15     CRMSE, lambda 0.015 (eV convention, beta inside L_C, eta 4e-4 A^2 beta-scaled)
#   null15  null arm: lambda 0.015 with --chain-source data (negatives = fresh training frames)
#   pol15   c15 then an MSE-only polish (lambda 0, 100 updates, from c15's raw weights and Adam)
#   c1e3    CRMSE, lambda 1e-3 eV
#   b10     --force-budget 0.10 at lambda 0.015 (candidates every 25 updates, 32-replica 1 ps screens)
#   b1e3    --force-budget 0.10 at lambda 1e-3
# SAMPLE_ORDER (default "mse c15 pol15 b10 b1e3 l0 c1e3 null15") orders the sample phase; "mse" (the
# parent) is sampled only when it is listed there.
# EPOCHS (default 400) sets the parents' cosine length in epochs (reproducible: no clock in it).
# Paths: the code at $REPO (default: this script's checkout), registry at $CRMSE_HOME.
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$REPO"
export CRMSE_HOME=${CRMSE_HOME:-/work/results-home} OMP_NUM_THREADS=1 PYTHONPATH=$REPO CRMSE_NO_PROGRESS=1
C=${CRMSE:-/work/main/.venv/bin/crmse}
ds=$1; tag=$2; seeds=$3; phase=${4:-all}
status_() { $C --json show "$1" 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['run']['status'])" 2>/dev/null; }
step() { local name=$1; shift 2; local st; st=$(status_ "$name")
  if [ "$st" = completed ]; then echo "skip $name"; return; fi
  echo "$(date -u +%H:%M:%S) start $name"
  if [ "$st" = interrupted ] && [ "$1" = regularize ]; then $C --threads 1 regularize --resume "$name" || echo "FAILED $name"
  else $C --threads 1 "$@" --name "$name" || echo "FAILED $name"; fi
  echo "$(date -u +%H:%M:%S) done $name"; }
SAMPLE="--replicas 64 --steps 20000 --record-every 20 --temperature-K 500"
REG="--chains 32 --updates 200 --temperature-K 500"
arms=" ${ARMS:-l0 c15 null15 pol15 b10} "
has() { [[ $arms == *" $1 "* ]]; }
sample_eval() { step $tag-md-$1-s$2 -- sample $tag-$1-s$2 $SAMPLE --seed $2; step $tag-eval-$1-s$2 -- evaluate $tag-md-$1-s$2; }
for s in $seeds; do
  if [ "$phase" != sample ]; then
    step $tag-mse-s$s -- pretrain --dataset "$ds" --split 1 --config examples/default.toml --n-train 200 --max-epochs ${EPOCHS:-400} --seed $s
    has l0 && step $tag-l0-s$s -- regularize --from $tag-mse-s$s --lambda 0 $REG --seed $s
    has c15 || has pol15 && step $tag-c15-s$s -- regularize --from $tag-mse-s$s --lambda 0.015 $REG --seed $s
    has null15 && step $tag-null15-s$s -- regularize --from $tag-mse-s$s --lambda 0.015 --chain-source data $REG --seed $s
    has pol15 && step $tag-pol15-s$s -- regularize --from $tag-c15-s$s --lambda 0 --chain-source data --chains 32 --updates 100 --warmup 0 --temperature-K 500 --seed $s
    has c1e3 && step $tag-c1e3-s$s -- regularize --from $tag-mse-s$s --lambda 0.001 $REG --seed $s
    has b10 && step $tag-b10-s$s -- regularize --from $tag-mse-s$s --lambda 0.015 --force-budget 0.10 $REG --seed $s
    has b1e3 && step $tag-b1e3-s$s -- regularize --from $tag-mse-s$s --lambda 0.001 --force-budget 0.10 $REG --seed $s
  fi
  if [ "$phase" != train ]; then
    for a in ${SAMPLE_ORDER:-mse c15 pol15 b10 b1e3 l0 c1e3 null15}; do
      if [ "$a" = mse ] || has "$a"; then sample_eval "$a" "$s"; fi
    done
  fi
done
