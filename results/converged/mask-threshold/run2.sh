#!/bin/bash
# the mask-threshold record: fit T on the validation split, apply it to the independent test set
cd /root/study/converged
D=/work/main/.venv/bin/dsmnet
O=/root/study/mask-threshold
set -e
for spec in "$@"; do
  set -- $spec; ds=$1; run=runs/$1/$2/$3; tag=$1-$2-$3
  OMP_NUM_THREADS=1 nice -n 5 $D evaluate $run --data data/$ds --split val --tta --threads 1 --out $O/$tag-val > $O/$tag-val.txt
  T=$(python3 -c "import json; print(json.load(open('$O/$tag-val/metrics.json'))['mask_threshold_sweep']['seg']['best'])")
  OMP_NUM_THREADS=1 nice -n 5 $D evaluate $run --data data/${ds}_test --split all --tta --threads 1 --mask-threshold $T --out $O/$tag-test-T > $O/$tag-test-T.txt
done
echo done
