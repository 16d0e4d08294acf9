"""The network's matrix products (models/products.py): torch's values and gradients, no MKL routine on the way, and
the pinned libraries running the code paths they were pinned to."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import products
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
    out = products.matmul(a, b)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert out.shape == (*batch, m, n) and out.dtype == dtype
    torch.testing.assert_close(out, torch.matmul(a, b), rtol=tol, atol=tol * k)


def test_gradients_are_the_analytic_ones() -> None:
    a = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(products.matmul, (a, b))
    a3 = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    b3 = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(products.matmul, (a3, b3))


def test_linear_is_nn_linear_in_parameters_initialization_and_values() -> None:
    torch.manual_seed(3)
    ours = products.Linear(6, 4)
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
    ],
)
def test_operands_it_does_not_take_are_named(a: torch.Tensor, b: torch.Tensor, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        products.matmul(a, b)


NETWORK_WITH_MKL_VERBOSE = """
import torch
import pipelines.numerics as numerics
numerics.pin()
from models.tabular import TabularMLP
torch.manual_seed(0)
net = TabularMLP([4, 6, 3], 3, hidden_dims=[16, 8], periodic={"frequencies": 4, "dim": 4, "sigma": 1.0})
cat, num = torch.randint(0, 3, (32, 3)), torch.randn(32, 3)
print("--- float32 training step", flush=True)
net(cat, num).sum().backward()
print("--- float64 scoring", flush=True)
with torch.inference_mode():
    net.double()(cat, num.double())
print("--- control: torch's own product", flush=True)
torch.matmul(torch.randn(64, 64), torch.randn(64, 64))
print("--- end", flush=True)
"""


def test_no_mkl_routine_runs_in_the_network() -> None:
    """MKL dispatches by CPU vendor, so it must not touch a model's bytes. The control proves MKL_VERBOSE speaks."""
    proc = subprocess.run(
        [sys.executable, "-c", NETWORK_WITH_MKL_VERBOSE],
        cwd=ROOT,
        env=tool_env(MKL_VERBOSE="1", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    )
    sections = proc.stdout.split("--- ")
    calls = {s.splitlines()[0]: [x for x in s.splitlines() if "GEMM" in x] for s in sections if s.strip()}
    assert calls["float32 training step"] == [] and calls["float64 scoring"] == [], calls
    assert calls["control: torch's own product"], (
        "MKL_VERBOSE printed nothing for torch.matmul: the check is blind"
    )


PINNED_PATHS = """
import json, torch
import pipelines.numerics as numerics
numerics.pin()
import numpy
from threadpoolctl import threadpool_info
with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
    torch.matmul(torch.randn(64, 64), torch.randn(64, 64))
blas = [i["architecture"] for i in threadpool_info() if i["internal_api"] == "openblas"]
print(json.dumps({"openblas": blas, "aten": torch.backends.cpu.get_cpu_capability()}))
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


def test_the_product_is_one_openblas_call_whatever_torchs_threads() -> None:
    """The product does not depend on torch's thread count (it is NumPy's), only on OpenBLAS' (pinned to one)."""
    a, b = torch.randn(300, 200), torch.randn(200, 100)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = products.matmul(a, b)
        torch.set_num_threads(2)
        two = products.matmul(a, b)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
