"""The runtime's CPU bf16 path: convolutions whose bf16 weight gradients oneDNN gets wrong."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsmnet.training.runtime import Runtime, cpu_model, degenerate_for_onednn_bf16, guard_cpu_bf16_convolutions


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    e = float((a - b).norm() / b.norm().clamp_min(1e-12))
    return e if e == e else float("inf")


def _gradients(conv: torch.nn.Conv3d, x: torch.Tensor, grad: torch.Tensor, bf16: bool):
    conv.weight.grad = None
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = conv(x)
    y.float().backward(grad)
    return y.detach().float(), x.grad, conv.weight.grad


# the shapes measured wrong without the guard (torch 2.14.1, AVX-512 BF16): a side shorter than the
# kernel, or a strided side one voxel long
@pytest.mark.parametrize(
    "kernel,stride,shape",
    [(3, 1, (2, 2, 2)), (3, 1, (2, 6, 6)), (5, 1, (3, 6, 6)), (5, 1, (6, 1, 6)), (3, 2, (6, 6, 1))],
)
@pytest.mark.parametrize("channels_last", [True, False])
def test_a_guarded_convolution_has_the_fp32_gradients_under_cpu_bf16(kernel, stride, shape, channels_last):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(16, 16, kernel, stride=stride, padding=kernel // 2, bias=False)
    reference = copy.deepcopy(conv)
    x = torch.randn(4, 16, *shape).bfloat16().float()  # the values bf16 sees, for the fp32 reference
    assert guard_cpu_bf16_convolutions(conv) == 1
    assert type(conv).__name__ == "Conv3d" and conv.state_dict().keys() == reference.state_dict().keys()
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y_ref = reference(x)
    grad = torch.randn_like(y_ref)
    y_ref, gx_ref, gw_ref = _gradients(reference, x, grad, bf16=False)
    for _ in range(5):  # the wrong results came and went from one call to the next
        y, gx, gw = _gradients(conv, x, grad, bf16=True)
        assert _relative(gw, gw_ref) < 0.02
        assert _relative(gx, gx_ref) < 0.02 and _relative(y, y_ref) < 0.02


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.sampled_from([1, 3, 5]),
    stride=st.sampled_from([1, 2]),
    sides=st.tuples(*[st.integers(1, 9)] * 3),
)
def test_only_inputs_too_small_for_the_kernel_or_a_strided_single_output_are_guarded(kernel, stride, sides):
    conv = torch.nn.Conv3d(1, 1, kernel, stride=stride, padding=kernel // 2)
    outputs = [(n + 2 * (kernel // 2) - kernel) // stride + 1 for n in sides]
    expected = any(n < kernel for n in sides) or (stride > 1 and 1 in outputs)
    assert degenerate_for_onednn_bf16(conv, sides) == expected


def test_only_a_cpu_bf16_runtime_guards_the_models_convolutions():
    def model():
        return torch.nn.Sequential(
            torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 4, 3, padding=1)
        )

    cpu = torch.device("cpu")
    guarded = Runtime(cpu, torch.bfloat16, channels_last=True).module(model())
    plain = Runtime(cpu, None, channels_last=True).module(model())
    assert all(type(m).__mro__[1].__name__ == "_FP32WhereDegenerate" for m in guarded if isinstance(m, torch.nn.Conv3d))
    assert all(type(m) is torch.nn.Conv3d for m in plain if isinstance(m, torch.nn.Conv3d))
    x = torch.randn(2, 1, 8, 8, 8).contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert guarded(x).dtype == torch.bfloat16  # large enough: bf16 throughout
        assert guarded(x[..., :2, :, :]).dtype == torch.bfloat16  # depth 2: fp32 inside, bf16 out


def test_a_cpu_runs_record_names_its_processor_and_amx(tmp_path):
    info = tmp_path / "cpuinfo"
    head = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    info.write_text(head + "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_model(info) == ["Intel(R) Xeon(R) Platinum 8480+", "amx"]
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_model(info) == ["AMD EPYC"]
    assert Runtime(torch.device("cpu"), None, False).signature().split("; ")[3:] == cpu_model()
