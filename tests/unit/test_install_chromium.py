"""`make browser` (tests/site/install_chromium.sh): the browser `make test` needs is installed, or named.

The script runs for real, with PATH reduced to a folder of the tools it may call; apt-get, sudo and id are small
stand-ins written here, so every branch runs without touching this machine's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "tests/site/install_chromium.sh"


def toolbox(tmp_path: Path, uid: int, tools: dict[str, str]) -> Path:
    """A bin folder with the basic tools the script uses, a fake `id`, and ``tools`` (name -> shell body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "env", "tail", "mktemp", "rm", "cat", "touch", "chmod"):
        real = shutil.which(name)
        assert real, name
        (bin_dir / name).symlink_to(real)
    tools = {"id": f'[ "$1" = "-u" ] && echo {uid}', **tools}
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def run(tmp_path: Path, bin_dir: Path, chromium: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin_dir), "CHROMIUM": str(chromium), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def fake_apt(chromium: Path, log: Path, fail: str = "") -> str:
    return (
        f'echo "$@" >> {log}\n'
        f'case "$*" in *{fail or "NEVER"}*) echo "E: Unable to locate package" >&2; exit 100;; esac\n'
        f'case "$*" in *install*) printf "#!/bin/sh\\necho Chromium 156\\n" > {chromium}; chmod +x {chromium};; esac'
    )


def test_present_browser_means_nothing_to_do(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    proc = run(tmp_path, toolbox(tmp_path, 1000, {}), chromium)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_root_installs_with_apt(tmp_path: Path) -> None:
    chromium, log = tmp_path / "chromium", tmp_path / "apt.log"
    proc = run(tmp_path, toolbox(tmp_path, 0, {"apt-get": fake_apt(chromium, log)}), chromium)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends chromium"]
    assert "installed Chromium 156" in proc.stdout


def test_non_root_goes_through_sudo(tmp_path: Path) -> None:
    chromium, log = tmp_path / "chromium", tmp_path / "apt.log"
    sudo_log = tmp_path / "sudo.log"
    tools = {
        "apt-get": fake_apt(chromium, log),
        "sudo": f'printf "%s\\n" "$*" >> {sudo_log}\n[ "$1" = "-n" ] && shift\nexec "$@"',
    }
    proc = run(tmp_path, toolbox(tmp_path, 1000, tools), chromium)
    assert proc.returncode == 0, proc.stderr
    assert all(
        line.startswith("-n ") for line in sudo_log.read_text().splitlines()
    )  # no terminal: never prompts
    assert chromium.is_file()


@pytest.mark.parametrize(
    ("uid", "tools", "reason"),
    [
        (1000, {"apt-get": "exit 0"}, "not running as root and sudo is not available"),
        (0, {}, "apt-get is not available on this machine"),
        (0, {"apt-get": "FAIL"}, "apt-get install chromium failed"),
        (0, {"apt-get": "exit 0"}, "apt-get installed chromium but"),
    ],
    ids=["no-sudo", "no-apt", "install-fails", "installed-elsewhere"],
)
def test_when_nothing_works_the_message_names_the_package(
    tmp_path: Path, uid: int, tools: dict[str, str], reason: str
) -> None:
    chromium = tmp_path / "chromium"
    if tools.get("apt-get") == "FAIL":
        tools = {"apt-get": fake_apt(chromium, tmp_path / "apt.log", fail="install")}
    proc = run(tmp_path, toolbox(tmp_path, uid, tools), chromium)
    assert proc.returncode == 1
    assert "ERROR [browser]" in proc.stderr and "Debian's package 'chromium'" in proc.stderr
    assert reason in proc.stderr and "sudo apt-get install chromium" in proc.stderr


def test_make_test_depends_on_the_browser() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: lint browser " in makefile and "tests/site/install_chromium.sh" in makefile
    assert (ROOT / ".ci/run").read_text().strip().splitlines()[-1] == "make test"
    assert os.access(SCRIPT, os.X_OK)
