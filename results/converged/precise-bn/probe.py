"""A finished run's best weights held fixed; precise BN recomputed from each epoch's sample (the
first 512 of the permutation ``train_epoch`` draws for the run's seed and that epoch) and the
validation loss measured after each: how much of a run's late validation-loss movement is the
precise-BN sample rather than the weights. Written for the study's runs (code 64db7dc):

    OMP_NUM_THREADS=1 python results/converged/precise-bn/probe.py RUN DATA FIRST LAST OUT.json
    (e.g. RUN = <study>/runs/A/dsmnet-cls+seg/seed1, DATA = <study>/data/A, FIRST LAST = 70 98)
"""

import json
import sys
from pathlib import Path

import torch

from dsmnet.training.checkpoint import load_checkpoint
from dsmnet.training.loop import Training
from dsmnet.training.priors import precise_bn
from dsmnet.training.settings import TrainConfig
from dsmnet.training.validate import evaluate_split


def main(run: Path, data_dir: str, first: int, last: int, out: Path) -> None:
    torch.set_num_threads(1)
    state = load_checkpoint(run / "best.pt")
    r = Training(None, data_dir, run, TrainConfig(), state, lambda _: None)
    judged = r.step if r.ema is None else r.ema.module
    train = torch.tensor(r.split["train"])
    found = {"run": str(run), "best_epoch": state["best_epoch"], "losses": {}}
    for epoch in range(first, last + 1):
        gen = torch.Generator().manual_seed(r.settings.seed * 7919 + epoch)  # as train_epoch draws it
        sample = train[torch.randperm(len(train), generator=gen)][: r.settings.precise_bn]
        precise_bn(judged.model, r.data, sample, r.rt, r.settings.batch_size)
        val = evaluate_split(judged.model, judged.criterion, r.data, r.split["val"], r.rt, r.settings.batch_size)
        found["losses"][epoch] = val["loss"]
        print(epoch, round(val["loss"], 5), flush=True)
    out.write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
