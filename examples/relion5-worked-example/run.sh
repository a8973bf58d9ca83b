#!/bin/bash
# The worked example of docs/worked-example.md: a RELION-5 project whose answers are known,
# training data simulated like it and like the default microscope, a model trained on each,
# both predicting the project's picks, scored paired. Resumable: run it again to continue.
# Usage: examples/relion5-worked-example/run.sh [WORKDIR]   (default: worked-example/)
# A harder project: STRUCTURES=a,b,c (library names; default the ribosome and the proteasome-like
# complex), N_PROJECT picks (700), N_TRAIN training particles (786), DOSE e/Å² of each tilt series
# (none), e.g. STRUCTURES=ruvb_7pbl,mjap_9x2o,pseudo_filament,pseudo_nr_hexamer N_TRAIN=1600 DOSE=120
set -euo pipefail
W=${1:-worked-example}
STRUCTURES=${STRUCTURES:-ribosome_6zu5,pseudo_proteasome}
N_PROJECT=${N_PROJECT:-700}
N_TRAIN=${N_TRAIN:-786}
DOSE_FLAG=${DOSE:+--dose $DOSE}
mkdir -p "$W"
run() { echo "+ $*"; "$@"; }
RECIPE="--lr 0.003 --warmup 2 --schedule plateau --batch-size 32 --epochs 40 --patience 8 --augment rotate"

# 1. the user's project: two tomograms at 13.68 Å, tilts −50°/+70°, a 200 kV microscope with
#    Cs 2.7 mm and 3–4 µm underfocus, picks in RELION-5's centred Å (their true classes kept)
[ -f "$W/project/particles.star" ] || run dsmnet simulate --preset C --structures "$STRUCTURES" --n "$N_PROJECT" \
  --seed 31 --tomogram 150,250,250 --voltage 200 --cs 2.7 --amplitude-contrast 0.1 --defocus 3,4 $DOSE_FLAG \
  --out "$W/project-truth" --relion-project "$W/project"
TOMOS="$W/project/Tomograms/job001/tomograms.star"

# 2. training data imaged like the project (read from its files), and like the default microscope
[ -d "$W/like" ] || run dsmnet simulate --preset C --structures "$STRUCTURES" --n "$N_TRAIN" --like "$TOMOS" --box 32 \
  --seed 11 --no-tomograms --out "$W/like"
[ -d "$W/default" ] || run dsmnet simulate --structures "$STRUCTURES" --n "$N_TRAIN" --box 32 --snr 0.06 \
  --seed 11 --no-tomograms --out "$W/default"

# 3. DSM-Net at half width on 32³ boxes (the demo's network) trained on each, with the converged
#    study's recipe (resumable; ~20 min each on one CPU thread)
for kind in like default; do
  [ -f "$W/runs/$kind/summary.json" ] && continue
  resume=""; [ -f "$W/runs/$kind/last.pt" ] && resume="--resume"
  run dsmnet train dsmnet_demo --data "$W/$kind" --out "$W/runs/$kind" $RECIPE --no-progress $resume
done

# 4. both predict the project's picks: classes, masks, per-class STAR files, tomogram label maps
for kind in like default; do
  [ -f "$W/predict-$kind/predictions.star" ] || run dsmnet predict "$W/runs/$kind" --tomograms "$TOMOS" \
    --picks "$W/project/particles.star" --out "$W/predict-$kind" --border pad --tta --no-progress
done

# 5. scored on the same picks against the truth the project kept: the boxes each model saw, cut
#    at its own voxel size, evaluated, and the two compared paired
for kind in like default; do
  voxel=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['voxel_size'])" "$W/$kind/simulation.json")
  [ -d "$W/picks-$kind" ] || run dsmnet extract --tomograms "$TOMOS" "$W/project/particles.star" --box 32 --border pad \
    --voxel-size "$voxel" --out "$W/picks-$kind"
  [ -f "$W/score-$kind/metrics.json" ] || run dsmnet evaluate "$W/runs/$kind" --data "$W/picks-$kind" --split all \
    --tta --out "$W/score-$kind"
done
run dsmnet paired "$W/score-like/metrics.json" "$W/score-default/metrics.json"
