"""Pinned numerical code paths, so that the same commit and data give byte-identical models on x86-64 CPUs with
AVX2, Intel and AMD alike (and on machines of one kind elsewhere).

Floating-point sums depend on the order of their terms, and that order depends on the number of threads and on
the code path a library picks for the CPU it finds. Measured on a 2-core AMD EPYC: logistic regression and
gradient boosting fitted with 1 and with 2 threads pickle to different bytes; logistic regression with OpenBLAS'
Sandybridge and Haswell kernels differs, and so does the Lightning network with ATen's default and AVX2 kernels.
So every pipeline process, before numpy, scikit-learn or torch load:

- runs a fixed number of threads in every native pool (``PIPELINE_NUM_THREADS``, default 2: OpenMP, OpenBLAS,
  MKL; torch follows ``OMP_NUM_THREADS``);
- on x86_64 machines with AVX2, uses the AVX2 kernels whatever newer instructions the CPU has (OpenBLAS
  ``OPENBLAS_CORETYPE=Haswell``, ATen ``ATEN_CPU_CAPABILITY=avx2``, oneDNN ``ONEDNN_MAX_CPU_ISA=AVX2``, numpy's
  universal functions without their AVX-512 variants). These pick code by the pinned name, on any vendor.

MKL cannot be pinned that way: it dispatches by vendor. ``MKL_CBWR=AVX2`` (pinned here until issue 23) is an
Intel-only branch: on AMD, ``MKL_VERBOSE`` reports ``CNR:AUTO``, and an Intel Xeon with AVX-512 trained Adult's
network to other weights than the AMD EPYC that built the committed ones. Even ``MKL_CBWR=COMPATIBLE``, which
Intel documents for "Intel or Intel compatible" CPUs, gave other bytes on the two (``eeb903d0`` here, ``a591253f``
on the Xeon). So no model's bytes go through an MKL routine whose result could differ: the network's matrix
products use OpenBLAS and its sines and cosines NumPy's loops (``models.reproducible_ops``); AdamW's square root
still calls MKL, exact in IEEE 754 on any code path; ``MKL_CBWR=COMPATIBLE`` stays as a guard.

Verified: on the AMD EPYC, the networks of every system train to the same bytes whatever MKL's branch
(``AUTO``, ``COMPATIBLE``), its instruction limit (``MKL_ENABLE_INSTRUCTIONS=SSE4_2``) and oneDNN's
(``ONEDNN_MAX_CPU_ISA=SSE41``), which the old path did not (``tests/integration/test_cpu_dispatch.py``); and a
cold run in a clean clone reproduces the committed ``dvc.lock`` (``tests/integration/test_reproducible.py``).
That Intel gives the same bytes rests on the libraries left in the path taking their code from the pins above;
the scikit-learn models, which use the same OpenBLAS, reproduced on an Intel Xeon. CPUs without AVX2 and other
architectures get only the thread pins: their artifacts are reproducible on machines of the same kind.

A value already set in the environment wins (``setdefault``), so a run can opt out on purpose.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

THREADS_ENV = "PIPELINE_NUM_THREADS"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
AVX2_PINS = {
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",  # the branch MKL honours on AMD too; no model's bytes depend on MKL
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy 2.4's AVX-512 dispatch targets
}


def has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        return any(line.startswith("flags") and " avx2" in line for line in cpuinfo.read_text().splitlines())
    except OSError:
        return False


def pins(machine: str | None = None, avx2: bool | None = None) -> dict[str, str]:
    """The environment variables this machine gets (before ``setdefault``)."""
    threads = os.environ.get(THREADS_ENV, "2")
    out = dict.fromkeys(THREAD_VARS, threads)
    machine = machine or platform.machine()
    if machine in ("x86_64", "AMD64") and (has_avx2() if avx2 is None else avx2):
        out |= AVX2_PINS
    return out


def pin() -> dict[str, str]:
    """Apply the pins to this process (and the processes it starts); return what is now in effect."""
    for key, value in pins().items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in pins()}
