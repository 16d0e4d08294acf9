"""The network's matrix products (models/ops.py): torch's values and gradients, no MKL routine on the way, and
the pinned libraries running the code paths they were pinned to."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import reproducible_ops as ops
from pipelines import numerics
from pipelines.core.workspace import ROOT, tool_env

X86_AVX2 = platform.machine() in ("x86_64", "AMD64") and numerics.has_avx2()


@settings(max_examples=40, deadline=None)
@given(
    batch=st.sampled_from([(), (1,), (3,)]),
    m=st.integers(1, 40),
    k=st.integers(1, 70),
    n=st.integers(1, 30),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    transposed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_products_are_torchs_products(
    batch: tuple[int, ...], m: int, k: int, n: int, dtype: torch.dtype, transposed: bool, seed: int
) -> None:
    """Any shape (ones included), contiguous or a transposed view: torch's values, to float rounding."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*batch, m, k, generator=g, dtype=dtype)
    b = torch.randn(*batch, n, k, generator=g, dtype=dtype).transpose(-1, -2)
    if not transposed:
        b = b.contiguous()
    out = ops.matmul(a, b)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert out.shape == (*batch, m, n) and out.dtype == dtype
    torch.testing.assert_close(out, torch.matmul(a, b), rtol=tol, atol=tol * k)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(7,), (3, 5), (2, 3, 4)]),
    scale=st.sampled_from([1.0, 10.0, 1e4]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_sin_cos_are_torchs(shape: tuple[int, ...], scale: float, dtype: torch.dtype, seed: int) -> None:
    v = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale
    sin, cos = ops.sin_cos(v)
    assert sin.dtype == cos.dtype == dtype and sin.shape == cos.shape == v.shape
    tol = 1e-6 if dtype == torch.float32 else 1e-15
    torch.testing.assert_close(sin, torch.sin(v), rtol=0, atol=tol)
    torch.testing.assert_close(cos, torch.cos(v), rtol=0, atol=tol)


def test_gradients_are_the_analytic_ones() -> None:
    v = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ops.sin_cos(x)[0] * 2 + ops.sin_cos(x)[1], (v,))
    a = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.matmul, (a, b))
    a3 = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    b3 = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.matmul, (a3, b3))


def test_linear_is_nn_linear_in_parameters_initialization_and_values() -> None:
    torch.manual_seed(3)
    ours = ops.Linear(6, 4)
    torch.manual_seed(3)
    theirs = torch.nn.Linear(6, 4)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key])
    x = torch.randn(9, 6)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    ("a", "b", "words"),
    [
        (torch.ones(2, 3), torch.ones(3), "two 2-d or two 3-d"),
        (torch.ones(2, 2, 3), torch.ones(3, 2), "two 2-d or two 3-d"),
        (torch.ones(2, 3), torch.ones(3, 2, dtype=torch.float64), "one dtype"),
        (torch.ones(2, 3, dtype=torch.float16), torch.ones(3, 2, dtype=torch.float16), "float32 or float64"),
        (torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64), "float32 or float64"),
    ],
)
def test_operands_it_does_not_take_are_named(a: torch.Tensor, b: torch.Tensor, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ops.matmul(a, b)


NETWORK_STEPS = """
import copy, sys, torch
import pipelines.numerics as numerics
numerics.pin()
from models.tabular import TabularMLP
torch.manual_seed(0)
net = TabularMLP([4, 6, 3], 3, hidden_dims=[16, 8], periodic={"frequencies": 4, "dim": 4, "sigma": 1.0})
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
cat, num, y = torch.randint(0, 3, (64, 3)), torch.randn(64, 3), (torch.rand(64) > 0.5).float()
print("PHASE training", flush=True)
for _ in range(2):
    opt.zero_grad()
    torch.nn.functional.binary_cross_entropy_with_logits(net(cat, num), y).backward()
    opt.step()
print("PHASE scoring", flush=True)
with torch.inference_mode():
    torch.sigmoid(copy.deepcopy(net).double().eval()(cat, num.double()))
print("PHASE control", flush=True)
torch.sin(torch.randn(64)); torch.matmul(torch.randn(64, 64), torch.randn(64, 64))
print("PHASE end", flush=True)
"""
# MKL's BLAS and vector-math entry points in libtorch_cpu; square root is exact in IEEE 754, so any code path
# gives its bits (AdamW calls vmsSqrt)
MKL_ENTRY = re.compile(
    r"^(vm?[sd][A-Z][A-Za-z0-9]*|[SDCZ]GEMM[A-Z_0-9]*|[sdcz]gemm_?|cblas_[sdcz]gemm[a-z_0-9]*)$"
)
EXACT = {"vmsSqrt", "vmdSqrt", "vsSqrt", "vdSqrt"}


def test_no_mkl_routine_but_an_exact_one_runs_in_the_network(tmp_path: Path) -> None:
    """MKL picks its code by CPU vendor, so no MKL routine whose result could differ may touch a model's bytes.
    Read with gdb: a breakpoint on every MKL BLAS and vector-math entry point of torch's library, through a
    training step, float64 scoring and a control (torch.sin and torch.matmul, which must be seen)."""
    gdb, nm = shutil.which("gdb"), shutil.which("nm")
    assert gdb and nm, "this test reads MKL's calls with gdb and nm (Debian's gdb and binutils): install them"
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    listed = subprocess.run(
        [nm, "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    )
    entries = sorted(
        {line.split()[-1] for line in listed.stdout.splitlines() if MKL_ENTRY.match(line.split()[-1])}
    )
    assert {"vmsSin", "vmsCos", "sgemm_"} <= set(entries), "MKL's entry points are not where they were"
    script = tmp_path / "net.py"
    script.write_text(NETWORK_STEPS)
    commands = [
        "set pagination off", "set confirm off", "set breakpoint pending on", "set print thread-events off",
        "set auto-solib-add off", "catch load libtorch_cpu", "run", "sharedlibrary libtorch_cpu", "delete 1",
        *(f"break {name}" for name in entries),
        f"commands 2-{len(entries) + 1}", "silent", 'printf "MKLCALL %s\\n", $_as_string($pc)', "continue", "end",
        "continue",
    ]  # fmt: skip
    (tmp_path / "gdb").write_text("\n".join(commands) + "\n")
    proc = subprocess.run(
        [gdb, "-batch", "-x", str(tmp_path / "gdb"), "--args", sys.executable, str(script)],
        cwd=ROOT,
        env=tool_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        errors="replace",
    )
    calls: dict[str, set[str]] = {}
    phase = ""
    for line in proc.stdout.splitlines():
        if line.startswith("PHASE "):
            phase = line.split()[1]
        elif m := re.search(r"MKLCALL 0x[0-9a-f]+ <([A-Za-z0-9_]+)", line):
            calls.setdefault(phase, set()).add(m.group(1))
    assert "end" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert {"vmsSin", "sgemm_"} <= calls.get("control", set()), f"the breakpoints saw nothing: {calls}"
    assert calls.get("training", set()) <= EXACT and calls.get("scoring", set()) <= EXACT, calls


PINNED_PATHS = """
import json, torch
import pipelines.numerics as numerics
numerics.pin()
import numpy
from threadpoolctl import threadpool_info
with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
    torch.matmul(torch.randn(64, 64), torch.randn(64, 64))
blas = [i["architecture"] for i in threadpool_info() if i["internal_api"] == "openblas"]
from numpy._core._multiarray_umath import __cpu_features__ as found, __cpu_dispatch__ as compiled
targets = [t for t in compiled if found[t]]
print(json.dumps({"openblas": blas, "aten": torch.backends.cpu.get_cpu_capability(), "numpy": targets}))
"""


@pytest.mark.skipif(not X86_AVX2, reason="the AVX2 pins apply to x86-64 CPUs with AVX2 only")
def test_each_pinned_library_runs_the_path_it_was_pinned_to() -> None:
    """A pin a library ignores pins nothing (MKL_CBWR=AVX2 ran MKL's AUTO branch on AMD): each is read back."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", PINNED_PATHS],
        cwd=ROOT,
        env=tool_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["openblas"] and set(found["openblas"]) == {numerics.AVX2_PINS["OPENBLAS_CORETYPE"]}, found
    assert found["aten"] == numerics.AVX2_PINS["ATEN_CPU_CAPABILITY"].upper(), found
    branch = [line for line in proc.stdout.splitlines() if "SGEMM" in line]
    assert branch and f"CNR:{numerics.AVX2_PINS['MKL_CBWR']}" in branch[0], branch
    assert found["numpy"] == ["X86_V3"], (
        f"numpy dispatches to {found['numpy']}, not only its AVX2 loops (X86_V3)"
    )


def test_the_product_is_one_openblas_call_whatever_torchs_threads() -> None:
    """The product does not depend on torch's thread count (it is NumPy's), only on OpenBLAS' (pinned to one)."""
    a, b = torch.randn(300, 200), torch.randn(200, 100)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.matmul(a, b)
        torch.set_num_threads(2)
        two = ops.matmul(a, b)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
