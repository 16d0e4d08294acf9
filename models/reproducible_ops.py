"""The network's operations whose bits would otherwise depend on the CPU's vendor, on the CPU: matrix products
(``Linear``, the periodic embedding's batched product) and sine and cosine.

Why: PyTorch's CPU wheel hands float32 and float64 matrix products to Intel MKL's BLAS (``SGEMM``,
``SGEMM_BATCH``, ``DGEMM``) and ``torch.sin``/``torch.cos`` to MKL's vector math (``vmsSin``, ``vmdCos``, ...).
MKL picks its code path by processor, and ``MKL_CBWR`` cannot pin it across vendors: ``MKL_CBWR=AVX2`` is an
Intel-only branch (on AMD, ``MKL_VERBOSE`` reports ``CNR:AUTO``; Intel's documentation: "On non-Intel CPUs ... the
AUTO branch is used instead"), and ``MKL_CBWR=COMPATIBLE`` trained Adult's network to other bytes on an AMD EPYC
(``eeb903d0``) than on an Intel Xeon (``a591253f``, issue 23). MKL's sine is not correctly rounded (0.6 ulp at
worst, measured), so another code path may give other bits. Which MKL routines a training step and a float64
scoring call reach was read with gdb breakpoints on every MKL entry point (``tests/unit/test_reproducible_ops.py``
repeats it): besides these, only ``vmsSqrt``/``vmdSqrt`` (AdamW's square root), which IEEE 754 rounds exactly, so
every implementation gives the same bits.

How: on the CPU these go through NumPy: products by ``matmul``, i.e. OpenBLAS with its kernels pinned by
``OPENBLAS_CORETYPE=Haswell``, which chooses kernels and block sizes by that name, not by the processor it finds
(the scikit-learn models, on the same OpenBLAS, reproduced on the Xeon); sine and cosine by NumPy's own loops,
whose instruction set ``NPY_DISABLE_CPU_FEATURES`` pins to AVX2 (float64 falls back to glibc's correctly rounded
``sin``/``cos``). Gradients are the usual ones (``dA = dC Bᵀ``, ``dB = Aᵀ dC``; ``d sin = cos``, ``d cos = -sin``),
through the same code. On a GPU, torch's own operations run unchanged. Measured cost: ``make bench`` (training).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


_blas: Any = None


def _product(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """``a @ b`` by OpenBLAS on one thread. With its usual two, OpenBLAS' spinning workers and torch's OpenMP pool
    contend for two cores: a training step of Adult's network took 32 ms instead of 6.9 (MKL: 4.4)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    with _blas.limit(limits=1):
        return torch.from_numpy(np.matmul(a, b))


class _MatMul(torch.autograd.Function):
    """``a @ b`` for CPU tensors of shapes (..., m, k) and (..., k, n) with equal batch shapes, through NumPy."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return _product(_np(a), _np(b))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        g = _np(grad)
        grad_a = _product(g, _np(b).swapaxes(-1, -2)) if ctx.needs_input_grad[0] else None
        grad_b = _product(_np(a).swapaxes(-1, -2), g) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


FLOATS = (torch.float32, torch.float64)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``: (m, k) x (k, n) -> (m, n), or batched (s, m, k) x (s, k, n) -> (s, m, n); float32 or float64.

    Raises ``ValueError`` for operands of other ranks, other dtypes, or two different dtypes (no promotion).
    """
    if a.device.type != "cpu" or b.device.type != "cpu":
        return torch.matmul(a, b)
    if a.dim() != b.dim() or a.dim() not in (2, 3) or a.dtype != b.dtype or a.dtype not in FLOATS:
        raise ValueError(
            f"matmul takes two 2-d or two 3-d tensors of one dtype, float32 or float64; got {tuple(a.shape)} "
            f"{a.dtype} and {tuple(b.shape)} {b.dtype}"
        )
    out: torch.Tensor = _MatMul.apply(a, b)
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``torch.nn.functional.linear`` for a batch of rows: (batch, in) x (out, in)ᵀ + (out,) -> (batch, out)."""
    out = matmul(x, weight.t())
    return out if bias is None else out + bias


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` (same parameters, initialization and state dict) with the product of ``linear``; its
    input is a batch of rows, (batch, in)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class _SinCos(torch.autograd.Function):
    """``(sin v, cos v)`` for a CPU tensor, by NumPy."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _np(v)
        sin, cos = torch.from_numpy(np.sin(x)), torch.from_numpy(np.cos(x))
        ctx.save_for_backward(sin, cos)
        return sin, cos

    @staticmethod
    def backward(ctx: Any, grad_sin: torch.Tensor, grad_cos: torch.Tensor) -> torch.Tensor:
        sin, cos = ctx.saved_tensors
        return grad_sin * cos - grad_cos * sin


def sin_cos(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(torch.sin(v), torch.cos(v))``, any shape, float32 or float64; by NumPy on the CPU (see the module)."""
    if v.device.type != "cpu":
        return torch.sin(v), torch.cos(v)
    if v.dtype not in FLOATS:
        raise ValueError(f"sin_cos takes a float32 or float64 tensor, got {v.dtype}")
    sin, cos = _SinCos.apply(v)
    return sin, cos
