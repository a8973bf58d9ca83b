"""What precise BN's sample does to test accuracy: a run's best weights, the BatchNorm statistics
recomputed from each given epoch's sample (as ``probe.py``), then the validation loss and the
test set's accuracy, mIoU and loss (all its particles, without test-time turns) for each:

    OMP_NUM_THREADS=1 python results/converged/precise-bn/test.py RUN DATA TEST OUT.json 83,76,80,89,94,98,72
"""

import json
import sys
from pathlib import Path

import torch

from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.training.checkpoint import load_checkpoint
from dsmnet.training.loop import Training
from dsmnet.training.priors import precise_bn
from dsmnet.training.settings import TrainConfig
from dsmnet.training.validate import evaluate_split

KEPT = ("acc_cls", "miou_seg", "loss")


def main(run: Path, data_dir: str, test_dir: str, out: Path, epochs: list[int]) -> None:
    torch.set_num_threads(1)
    state = load_checkpoint(run / "best.pt")
    r = Training(None, data_dir, run, TrainConfig(), state, lambda _: None)
    test = load_dataset(test_dir, classes=state["classes"], box=r.data.box)
    test.scale_density(r.settings.density_scale)
    judged = r.step if r.ema is None else r.ema.module
    train, batch = torch.tensor(r.split["train"]), r.settings.batch_size
    found = {"run": str(run), "best_epoch": state["best_epoch"], "test": {}}
    for epoch in epochs:
        gen = torch.Generator().manual_seed(r.settings.seed * 7919 + epoch)  # as train_epoch draws it
        precise_bn(judged.model, r.data, train[torch.randperm(len(train), generator=gen)][: r.settings.precise_bn],
                   r.rt, batch)  # fmt: skip
        val = evaluate_split(judged.model, judged.criterion, r.data, r.split["val"], r.rt, batch)
        got = evaluate_split(judged.model, judged.criterion, test, list(range(len(test))), r.rt, batch)
        found["test"][epoch] = {"val_loss": val["loss"], **{k: got[k] for k in KEPT if k in got}}
        print(epoch, found["test"][epoch], flush=True)
    out.write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), [int(e) for e in sys.argv[5].split(",")])
