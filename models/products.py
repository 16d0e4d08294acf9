"""Matrix products whose bits do not depend on the CPU's vendor: the network's ``Linear`` and einsum on the CPU.

Why: PyTorch's CPU wheel computes float32 and float64 matrix products with Intel MKL, which picks its code path by
processor. ``MKL_CBWR=AVX2`` pins that path on Intel CPUs only: on AMD, ``MKL_VERBOSE`` reports ``CNR:AUTO``
(Intel's documentation: "On non-Intel CPUs ... the AUTO branch is used instead"), and ``MKL_CBWR=COMPATIBLE``
trains Adult's network to other bytes on an AMD EPYC (``eeb903d0``) than the same setting on an Intel Xeon
(``a591253f``, issue 23). The network's other kernels are ATen's own, whose instruction set is pinned
(``ATEN_CPU_CAPABILITY``, ``pipelines.numerics``), and its only MKL calls are ``SGEMM`` and ``SGEMM_BATCH``
(``MKL_VERBOSE=1``; oneDNN is not called: ``ONEDNN_VERBOSE=1`` prints nothing).

How: on the CPU these products go through NumPy's ``matmul``, i.e. OpenBLAS with its kernels pinned by
``OPENBLAS_CORETYPE=Haswell``: OpenBLAS chooses kernels and block sizes by that core type, not by the processor it
finds, so the same operands give the same bits on Intel and AMD (the scikit-learn models, which use the same
OpenBLAS, reproduced on both). On a GPU, torch's own products run unchanged. Gradients are the usual ones
(``dA = dC Bᵀ``, ``dB = Aᵀ dC``), also through NumPy. Measured cost: ``make bench`` (training).
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


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``: (m, k) x (k, n) -> (m, n), or batched (s, m, k) x (s, k, n) -> (s, m, n); float32 or float64.

    Raises ``ValueError`` for operands of other ranks or of different dtypes (no implicit promotion).
    """
    if a.device.type != "cpu" or b.device.type != "cpu":
        return torch.matmul(a, b)
    if a.dim() != b.dim() or a.dim() not in (2, 3) or a.dtype != b.dtype:
        raise ValueError(
            f"matmul takes two 2-d or two 3-d tensors of one dtype, got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    out: torch.Tensor = _MatMul.apply(a, b)
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``torch.nn.functional.linear``: (batch, in) x (out, in)ᵀ + (out,) -> (batch, out)."""
    out = matmul(x, weight.t())
    return out if bias is None else out + bias


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` (same parameters, initialization and state dict) with the product of ``linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
