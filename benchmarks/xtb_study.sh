#!/usr/bin/env bash
# The decisive experiment of issue 14 (docs/results.md, "the exact xTB reference"): MSE, CRMSE
# (lambda 0.015 eV) and its lambda = 0 control on 200 frames of an exact 500 K GFN2-xTB ethanol
# reference (eth-xtb500) and of the same frames relabelled with GFN1-xTB (eth-xtb500-g1).
# Completed runs are skipped, so rerunning resumes.
# Usage: xtb_study.sh DATASET TAG "SEEDS" ["EXTRA_LAMBDAS"]   (WAIT_PID=pid: start after it exits)
# EXTRA_LAMBDAS (eV convention) add CRMSE runs at other lambdas, named TAG-crmse-lLAMBDA-sSEED.
# Paths: a checkout at $REPO (default: this script's repo), registry at $CRMSE_HOME.
# ARMS (default "mse crmse l0") picks which of the MSE sample, CRMSE 0.015 and control arms run
# (the pretrain always does). REPLICAS (default 32) sets the sample runs' replicas (64 for the rMD17 study's protocol).
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$REPO"
export CRMSE_HOME=${CRMSE_HOME:-/work/results-home} OMP_NUM_THREADS=1 PYTHONPATH=$REPO CRMSE_NO_PROGRESS=1
C=${CRMSE:-/work/main/.venv/bin/crmse}
ds=$1; tag=$2; seeds=$3; extra=${4:-}
if [ -n "${WAIT_PID:-}" ]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 10; done; fi
done_() { $C --json show "$1" 2>/dev/null | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['run']['status']=='completed' else 1)" 2>/dev/null; }
step() { local name=$1; shift 2; if done_ "$name"; then echo "skip $name"; return; fi
  echo "$(date -u +%H:%M:%S) start $name"; $C --threads 1 "$@" --name "$name" || echo "FAILED $name"; echo "$(date -u +%H:%M:%S) done $name"; }
SAMPLE="--replicas ${REPLICAS:-32} --steps 20000 --record-every 20 --temperature-K 500"
REG="--chains 32 --updates 200 --temperature-K 500"
arms=" ${ARMS:-mse crmse l0} "
for a in $arms; do case $a in mse|crmse|l0|none) ;; *) echo "xtb_study.sh: ARMS word '$a' is not one of mse crmse l0 none (space-separated)" >&2; exit 2;; esac; done
for s in $seeds; do
  step $tag-mse-s$s -- pretrain --dataset $ds --split 1 --config examples/default.toml --n-train 200 --seed $s
  if [[ $arms == *" mse "* ]]; then
    step $tag-md-mse-s$s -- sample $tag-mse-s$s $SAMPLE --seed $s
    step $tag-eval-mse-s$s -- evaluate $tag-md-mse-s$s
  fi
  if [[ $arms == *" crmse "* ]]; then
    step $tag-crmse-s$s -- regularize --from $tag-mse-s$s --lambda 0.015 $REG --seed $s
    step $tag-md-crmse-s$s -- sample $tag-crmse-s$s $SAMPLE --seed $s
    step $tag-eval-crmse-s$s -- evaluate $tag-md-crmse-s$s
  fi
  if [[ $arms == *" l0 "* ]]; then
    step $tag-l0-s$s -- regularize --from $tag-mse-s$s --lambda 0 $REG --seed $s
    step $tag-md-l0-s$s -- sample $tag-l0-s$s $SAMPLE --seed $s
    step $tag-eval-l0-s$s -- evaluate $tag-md-l0-s$s
  fi
done
for s in $seeds; do
  for lam in $extra; do
    step $tag-crmse-l$lam-s$s -- regularize --from $tag-mse-s$s --lambda $lam $REG --seed $s
    step $tag-md-crmse-l$lam-s$s -- sample $tag-crmse-l$lam-s$s $SAMPLE --seed $s
    step $tag-eval-crmse-l$lam-s$s -- evaluate $tag-md-crmse-l$lam-s$s
  done
done
