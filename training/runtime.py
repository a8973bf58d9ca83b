"""Where and how tensors run: device, mixed precision, memory layout, DistributedDataParallel."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from dsmnet.registry.errors import UserError
from dsmnet.training.options import Precision


def available_memory() -> int:
    """Bytes of memory available now without swapping (Linux's ``MemAvailable``, which counts the
    page cache that can be dropped; elsewhere the free pages; 0 where the system does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass(frozen=True)
class Runtime:
    """Device, autocast dtype (None = fp32), memory layout and the distributed rank/world."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # this runtime joined the process group, so it leaves it (:meth:`close`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def flag(self, value: float = 0.0) -> torch.Tensor:
        """A one-element tensor for a collective (the early-stopping decision, summed losses): on
        the run's device, since NCCL, the process group of every GPU run, refuses CPU tensors."""
        return torch.full((1,), float(value), dtype=torch.float64, device=self.device)  # (an lr scale exactly)

    def close(self) -> None:
        """Leave the process group this runtime joined (the end of a ``torchrun`` run)."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    def module(self, m: torch.nn.Module) -> torch.nn.Module:
        m = m.to(self.device)
        if self.device.type == "cpu" and self.dtype == torch.bfloat16:
            guard_cpu_bf16_convolutions(m)
        return m.to(memory_format=torch.channels_last_3d) if self.channels_last else m

    def describe(self) -> str:
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        layout = "channels-last" if self.channels_last else "NCDHW"
        dist_ = f", rank {self.rank}/{self.world}" if self.world > 1 else ""
        return f"{self.device.type} {dtype} {layout}{dist_}"

    def signature(self) -> str:
        """What decides the run's arithmetic: :meth:`describe`, the torch build and the
        processor's kernels (``auto`` precision is bf16 on a CPU with AVX-512 BF16, fp32 on one
        with AVX2 only, so one study can run in both): recorded with each session of a run."""
        if self.device.type == "cuda":
            where = torch.cuda.get_device_name(self.device)
        else:
            where = torch.backends.cpu.get_cpu_capability().lower() + (" bf16" if cpu_bf16_supported() else "")
            where += "".join(f"; {part}" for part in cpu_model())
        return f"{self.describe()}; torch {torch.__version__}; {where}"


def cpu_model(info: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The processor's model name, and ``amx`` where it has AMX tiles (Linux ``/proc/cpuinfo``; elsewhere
    ``platform.processor()`` or nothing): runs of one study move between machines, and AMX raises
    the bf16 matmul peak far above AVX-512 BF16's, so a run's speed is read with the processor beside it."""
    import platform

    text = info.read_text(errors="replace") if info.is_file() else ""
    fields = dict(line.split(":", 1) for line in text.splitlines()[:60] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name") or platform.processor()
    amx = "amx_bf16" in fields.get("flags", "").split()
    return [part for part, present in ((name, bool(name)), ("amx", amx)) if present]


class _FP32WhereDegenerate:
    """Mixed into a ``Conv3d`` subclass by :func:`guard_cpu_bf16_convolutions`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and degenerate_for_onednn_bf16(self, tuple(x.shape[2:]))
        ):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float()).to(torch.bfloat16)
        return super().forward(x)


_GUARDED: dict[type, type] = {}


def degenerate_for_onednn_bf16(conv: torch.nn.Conv3d, sides: tuple[int, ...]) -> bool:
    """Whether ``conv`` on an input of spatial ``sides`` is a shape that oneDNN's CPU bf16
    convolution gets wrong: a side shorter than the kernel's (for example depth 2 under a 3³
    kernel: the weight gradient comes out with ~90 % error or infinite, measured with torch
    2.14.1 on AVX-512 BF16, while the output and the input gradient are right), or a strided
    side whose output is one voxel (the forward is wrong on AMX, pytorch/pytorch#169688)."""
    pads = conv.padding if not isinstance(conv.padding, str) else (0,) * 3 if conv.padding == "valid" else None
    for i, n in enumerate(sides):
        reach = conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
        if n < reach:
            return True
        if pads is not None and conv.stride[i] > 1 and (n + 2 * pads[i] - reach) // conv.stride[i] == 0:
            return True
    return False


def guard_cpu_bf16_convolutions(model: torch.nn.Module) -> int:
    """Run each 3D convolution of ``model`` in fp32 whenever, under CPU bf16 autocast, its input
    has a shape :func:`degenerate_for_onednn_bf16` names, and in bf16 otherwise. Such inputs are
    a few voxels across (the deepest stage of a small or binned box), so fp32 costs nothing
    there, while oneDNN's bf16 weight gradients for them are garbage that turns a run's loss
    into NaN within a few batches. Each ``Conv3d`` (built-in or a plugin's) gets a subclass of
    its own class with the same name, so weights, ``state_dict`` and ``repr`` are unchanged.
    Returns how many convolutions were guarded."""
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Conv3d) and not isinstance(m, _FP32WhereDegenerate):
            cls = type(m)
            if cls not in _GUARDED:
                _GUARDED[cls] = type(cls.__name__, (_FP32WhereDegenerate, cls), {"__module__": cls.__module__})
            m.__class__ = _GUARDED[cls]
            n += 1
    return n


def cpu_bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory instead of returning it to the kernel.

    A CPU training step allocates and frees the same large activations every batch. By default
    glibc serves each of them with a fresh ``mmap`` and gives it back with ``munmap``, so every
    step pays hundreds of thousands of page faults: measured on 2 cores, DSM-Net at mini scale
    spent a quarter of its time in the kernel and trained at 25 samples/s, 36 with this (no page
    faults left). Freed memory is reused rather than returned, so the heap stays as large as it
    has ever been: call it once the dataset is open (training does), or the opening pass over
    every file sets that size (measured: peak RSS 1.20× from 2 000 to 20 000 particles, 1.05×
    when called after). A no-op away from glibc, or with ``DSMNET_KEEP_FREED_MEMORY=0``. Returns
    whether the allocator was tuned.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("DSMNET_KEEP_FREED_MEMORY", "1") == "0":
        return _MALLOC_TUNED
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        _MALLOC_TUNED = bool(
            libc.mallopt(m_mmap_threshold, 1 << 30)
            and libc.mallopt(m_trim_threshold, (1 << 31) - 1)
            and libc.mallopt(m_top_pad, 1 << 28)
        )
    except (OSError, AttributeError):
        _MALLOC_TUNED = False
    return _MALLOC_TUNED


def auto_precision(device: torch.device) -> Precision:
    """bf16 autocast where the hardware runs it natively, else fp16 on a GPU (with the gradient
    scaler) and fp32 on a CPU. ``torch.cuda.is_bf16_supported()`` counts emulation by default, so
    a V100 or T4 (compute capability < 8) would get a bf16 that runs many times slower than fp16."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "bf16" if cpu_bf16_supported() else "fp32"


class DeviceError(UserError, ValueError):
    """A device setting that cannot work (the CLI reports it in one line)."""


def make_runtime(device: str = "auto", precision: Precision = "auto") -> Runtime:
    """Pick the device (CUDA when available) and precision (:func:`auto_precision`); join the
    process group when launched by ``torchrun``, each rank on the GPU of its ``LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None and world > 1:
        raise DeviceError(
            f"--device {device} under torchrun would put all {world} ranks on one GPU: give --device cuda "
            "(each rank takes the GPU of its LOCAL_RANK) and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # every convolution of a run has one shape: tune it once
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if precision == "auto":
        precision = auto_precision(dev)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(dev, dtype, channels_last=True, rank=rank, world=world, owns_group=owns)
