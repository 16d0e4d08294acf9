"""A model's bytes do not depend on the code path a library picks for the CPU (issue 23: an Intel Xeon with
AVX-512 trained Adult's network to other weights than the AMD EPYC that built the committed ones, because MKL
dispatches by vendor).

On one machine, every system's network is trained under several dispatches this machine offers (MKL's ``AUTO``,
``COMPATIBLE`` and ``AVX2`` branches, MKL limited to SSE4.2, oneDNN to SSE4.1) and must give the same bytes. A
control shows that these settings really change what MKL computes here, so the test has teeth: the path before the
fix (torch's own products) trained to other bytes under ``AUTO`` and ``COMPATIBLE`` on this very machine.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.core.workspace import tool_env
from tests.conftest import run

pytestmark = pytest.mark.integration

# Each named explicitly, whatever the pins say: the old pin (MKL_CBWR=AVX2) ran the AUTO branch on AMD, so
# comparing only against the pins could never have shown the difference there.
DISPATCHES = {
    "pinned": {},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-auto-sse4.2-onednn-sse4.1": {
        "MKL_CBWR": "AUTO",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
    },
    "mkl-avx2-branch": {"MKL_CBWR": "AVX2"},
}
MKL_PRODUCT = (
    "import hashlib, torch; torch.manual_seed(0); "
    "print(hashlib.sha256(torch.matmul(torch.randn(512, 166), torch.randn(166, 256)).numpy().tobytes()).hexdigest())"
)


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_dispatches_change_what_mkl_computes_here() -> None:
    """The control: the settings below are not no-ops on this machine."""
    digests = {
        name: subprocess.run(
            [sys.executable, "-c", MKL_PRODUCT],
            env=tool_env(**env),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for name, env in {"compatible": {"MKL_CBWR": "COMPATIBLE"}, "auto": {"MKL_CBWR": "AUTO"}}.items()
    }
    assert digests["compatible"] != digests["auto"], "MKL gives the same bits under AUTO and COMPATIBLE here"


def test_every_network_trains_to_the_same_bytes_under_every_dispatch(
    quick_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, _ = quick_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    networks = [
        (system, name)
        for system in params["systems"]
        for name, model in params[system]["models"].items()
        if model["family"] == "lightning"
    ]
    assert {s for s, _ in networks} == set(params["systems"]), "every system has a network to check"
    digests: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for system, name in networks:
        for dispatch, env in DISPATCHES.items():
            out = tmp_path / dispatch / system / name
            run(
                [
                    "python",
                    "-m",
                    "pipelines.train",
                    "--system",
                    system,
                    "--model",
                    name,
                    "--out",
                    str(out / "model"),
                    "--logs",
                    str(out / "logs"),
                    "--checkpoints",
                    str(out / "checkpoints"),
                ],
                repo,
                **env,
            )
            digests.setdefault((system, name), {})[dispatch] = folder_digest(out / "model")
    for key, by_dispatch in digests.items():
        reference = by_dispatch["pinned"]
        assert reference, key
        for dispatch, digest in by_dispatch.items():
            assert digest == reference, (
                f"{key} trains to other bytes under {dispatch}: {sorted(set(digest.items()) ^ set(reference.items()))}"
            )
