#!/usr/bin/env bash
# The 2026-12-02 study of docs/results.md (run from a checkout at /work/study; edit the paths): seeds 0-1 complete (MSE, CRMSE lambda 0.015 eV, lambda 0) and a
# MALA-chain CRMSE variant on seed 0. Completed runs are skipped. Usage: lanes2.sh a|b WAIT_PID
cd /work/study
export CRMSE_HOME=/work/results-home OMP_NUM_THREADS=1 PYTHONPATH=/work/study CRMSE_NO_PROGRESS=1
C=/work/main/.venv/bin/crmse
lane=$1; wait_pid=${2:-}
if [ -n "$wait_pid" ]; then while kill -0 "$wait_pid" 2>/dev/null; do sleep 10; done; fi
done_() { $C --json show "$1" 2>/dev/null | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['run']['status']=='completed' else 1)" 2>/dev/null; }
step() { local name=$1; shift 2; if done_ "$name"; then echo "skip $name"; return; fi
  echo "$(date -u +%H:%M:%S) start $name"; $C --threads 1 "$@" --name "$name" || echo "FAILED $name"; echo "$(date -u +%H:%M:%S) done $name"; }
SAMPLE="--replicas 64 --steps 20000 --record-every 20 --temperature-K 500"
REG="--chains 32 --updates 200 --temperature-K 500"
if [ "$lane" = a ]; then
  step eth200-s1-crmse -- regularize --from eth-mse-n200-s1 --lambda 0.015 $REG --seed 1
  step eth200-s1-md-crmse -- sample eth200-s1-crmse $SAMPLE --seed 1
  step eth200-s1-eval-crmse -- evaluate eth200-s1-md-crmse
  step eth200-s0-mala -- regularize --from eth-mse-n200-s0 --lambda 0.015 $REG --seed 0 --chain-sampler mala
  step eth200-s0-md-mala -- sample eth200-s0-mala $SAMPLE --seed 0
  step eth200-s0-eval-mala -- evaluate eth200-s0-md-mala
else
  step eth200-s0-md-lambda0 -- sample eth200-s0-lambda0 $SAMPLE --seed 0
  step eth200-s0-eval-lambda0 -- evaluate eth200-s0-md-lambda0
  step eth200-s1-lambda0 -- regularize --from eth-mse-n200-s1 --lambda 0 $REG --seed 1
  step eth200-s1-md-lambda0 -- sample eth200-s1-lambda0 $SAMPLE --seed 1
  step eth200-s1-eval-lambda0 -- evaluate eth200-s1-md-lambda0
  step eth200-s1-md-mse -- sample eth-mse-n200-s1 $SAMPLE --seed 1
  step eth200-s1-eval-mse -- evaluate eth200-s1-md-mse
fi
