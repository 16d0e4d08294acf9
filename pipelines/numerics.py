"""Pinned numerical code paths, so that the same commit and data give byte-identical models on any CPU machine.

Floating-point sums depend on the order of their terms, and that order depends on the number of threads and on
the vector instructions a library picks for the CPU it finds. Measured here (2-core AMD EPYC): logistic
regression and gradient boosting fitted with 1 and with 2 threads pickle to different bytes; logistic regression
with OpenBLAS' Sandybridge and Haswell kernels differs, and so does the Lightning network with ATen's default
and AVX2 kernels. So every pipeline process, before numpy, scikit-learn or torch load:

- runs a fixed number of threads in every native pool (``PIPELINE_NUM_THREADS``, default 2: OpenMP, OpenBLAS,
  MKL; torch follows ``OMP_NUM_THREADS``);
- on x86_64 machines with AVX2, uses the AVX2 kernels whatever newer instructions the CPU has (OpenBLAS
  ``OPENBLAS_CORETYPE=Haswell``, ATen ``ATEN_CPU_CAPABILITY=avx2``, MKL's conditional numerical reproducibility
  ``MKL_CBWR=AVX2``, oneDNN ``ONEDNN_MAX_CPU_ISA=AVX2``, numpy's universal functions without their AVX-512
  variants).

A value already set in the environment wins (``setdefault``), so a run can opt out on purpose. Other
architectures get only the thread pins; their artifacts are reproducible on machines of the same kind.
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
    "MKL_CBWR": "AVX2",
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
