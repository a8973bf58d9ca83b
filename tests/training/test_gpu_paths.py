"""The GPU paths, checked on the CPU: collectives on the run's device, per-rank seeds, the
precision chosen for a GPU with emulated bf16, cuDNN autotuning, host reads per training step,
checkpoints written from the host, and a torch without ``get_total_norm``."""

from __future__ import annotations

import types

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from dsmnet.training import loop, runtime, watch
from dsmnet.training.checkpoint import save_checkpoint
from dsmnet.training.loop import train
from dsmnet.training.runtime import DeviceError, Runtime, make_runtime
from dsmnet.training.settings import RunState, TrainConfig
from tests.training.said import said

META = Runtime(torch.device("meta"), None, channels_last=False, rank=0, world=2)


class _Sent(Exception):
    pass


def test_collectives_use_tensors_on_the_runs_device(monkeypatch):
    """NCCL refuses CPU tensors: the stop decision and the epoch's summed losses travel in
    tensors on the run's device (here ``meta``, standing in for a GPU)."""
    seen = []

    def record(tensor, *args, **kwargs):
        seen.append(tensor.device)
        raise _Sent  # (a meta tensor cannot be read back; the device is what is checked)

    monkeypatch.setattr(loop.dist, "broadcast", record)
    monkeypatch.setattr(loop.dist, "all_reduce", record)
    fake = types.SimpleNamespace(rt=META, run=RunState(bad_epochs=20), settings=types.SimpleNamespace(patience=15))
    with pytest.raises(_Sent):
        loop.Training.stop_everywhere(fake)
    with pytest.raises(_Sent):
        loop.Training._gathered(fake, 48, [torch.zeros((), device="meta"), torch.zeros((), device="meta")])
    assert seen == [torch.device("meta")] * 2


def test_ranks_draw_their_own_augmentation_and_dropout():
    assert watch.rank_seed(1234, 0) == 1234  # a single-process run draws as before
    seeds = {watch.rank_seed(1234, r) for r in range(8)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    draws = [torch.rand(1, generator=torch.Generator().manual_seed(watch.rank_seed(7, r))) for r in (0, 1)]
    assert draws[0] != draws[1]


def test_a_gpu_with_only_emulated_bf16_gets_fp16_and_cudnn_is_tuned(monkeypatch):
    calls = []

    def is_bf16_supported(including_emulation: bool = True):  # a V100 or T4: emulated only
        calls.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    rt = make_runtime("auto")
    assert rt.device == torch.device("cuda", 0) and rt.dtype == torch.float16 and calls == [False]
    assert torch.backends.cudnn.benchmark is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert make_runtime("cuda").dtype == torch.bfloat16


def test_one_gpu_named_under_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DeviceError, match=r"cuda:1 under torchrun .* LOCAL_RANK"):
        make_runtime("cuda:1")


class _CountReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (``item()``, ``float()``, ``bool()``): on a
    GPU each one waits for every queued kernel."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def test_a_training_step_reads_nothing_from_the_device(small_data, tiny_spec, tmp_path, monkeypatch):
    """Six batches an epoch: the losses and the finiteness flags are read once at the epoch's end
    (two reads), not per step (there were about seven per step)."""
    adam_step = torch.optim.Adam.step

    def step_unwatched(self, *args, **kwargs):  # Adam's step counters live on the host, GPU or not
        with _disable_current_modes():
            return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_unwatched)
    tolist, listed = torch.Tensor.tolist, []

    def counted_tolist(self):  # a whole tensor read at once: one wait, however many values
        listed.append(1)
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    counts = []
    train_epoch = loop.Training.train_epoch

    def counted(self, epoch):
        listed.clear()
        with _CountReads() as mode:
            out = train_epoch(self, epoch)
        counts.append(mode.reads + len(listed))
        return out

    monkeypatch.setattr(loop.Training, "train_epoch", counted)
    config = TrainConfig(progress=False, precise_bn=32, ema=0.9, precision="fp32")
    train(tiny_spec, small_data, tmp_path / "run", config, log=lambda _: None)
    assert counts == [2, 2]


def test_checkpoints_are_written_from_the_host(tmp_path, monkeypatch):
    class OnGpu(torch.Tensor):  # a tensor that says it lives on a GPU
        @property
        def device(self):
            return torch.device("cuda", 0)

        def cpu(self):
            return torch.Tensor(self.as_subclass(torch.Tensor))

    written = {}
    monkeypatch.setattr(torch, "save", lambda obj, path: written.update(obj))
    gpu = torch.ones(3).as_subclass(OnGpu)
    save_checkpoint(tmp_path / "last.pt", {"step": {"w": gpu}, "optimizer": {"state": {0: {"exp_avg": gpu}}}})
    tensors = [written["step"]["w"], written["optimizer"]["state"][0]["exp_avg"]]
    assert all(type(t) is torch.Tensor and t.device.type == "cpu" for t in tensors)


def test_the_gradient_norm_without_get_total_norm(monkeypatch):
    grads = [torch.randn(3, 4), torch.randn(5), torch.full((2,), float("inf"))]
    want = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads[:2]]))
    assert torch.isclose(watch.total_norm(grads[:2]), want)
    monkeypatch.delattr(torch.nn.utils, "get_total_norm")  # torch before 2.6
    assert torch.isclose(watch.total_norm(grads[:2]), want)
    assert not torch.isfinite(watch.total_norm(grads))


def test_the_process_group_a_run_joined_is_left(monkeypatch):
    left = []
    monkeypatch.setattr(runtime.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(runtime.dist, "destroy_process_group", lambda: left.append(1))
    Runtime(torch.device("cpu"), None, False, world=2, owns_group=True).close()
    Runtime(torch.device("cpu"), None, False, world=2, owns_group=False).close()  # a caller's group stays
    assert left == [1]


def test_in_memory_trains_as_lazy_reading_does_and_the_run_says_when_it_fits(small_data, tiny_spec, tmp_path):
    lazy = said(tiny_spec, small_data, tmp_path / "lazy", TrainConfig(progress=False, precise_bn=32))
    assert any("--in-memory reads them once" in line for line in lazy)
    config = TrainConfig(progress=False, precise_bn=32, in_memory=True)
    assert not any("--in-memory" in line for line in said(tiny_spec, small_data, tmp_path / "memory", config))
    a, b = (torch.load(tmp_path / r / "last.pt", weights_only=True) for r in ("lazy", "memory"))
    for key, value in a["step"].items():
        torch.testing.assert_close(b["step"][key], value, msg=key)
