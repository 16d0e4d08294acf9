"""GitOps registry in a real git repository: the champion is registered and promoted with GTO tags, which is
what .github/workflows/cd.yml does on every merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_repo, run

pytestmark = pytest.mark.integration


def test_register_and_promote_the_champion(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    run(
        ["gto", "register", "adult", "--version", "v1.0.1", "--message", "champion hgb-0123456789ab"],
        repo,
    )
    run(["gto", "assign", "adult", "--version", "v1.0.1", "--stage", "prod"], repo)
    tags = run(["git", "tag", "--list"], repo).stdout.split()
    assert "adult@v1.0.1" in tags and any(t.startswith("adult#prod#") for t in tags)
    shown = json.loads(run(["gto", "show", "adult", "--json"], repo).stdout)
    versions = {v["version"]: v for v in shown}
    assert "v1.0.1" in versions and "prod" in json.dumps(versions["v1.0.1"])
    message = run(["git", "tag", "-l", "--format=%(contents)", "adult@v1.0.1"], repo).stdout
    assert "hgb-0123456789ab" in message
    # a second release on the next merge, then a rollback: prod points back at the first version
    run(["git", "commit", "--allow-empty", "-q", "-m", "next merge"], repo)
    run(["gto", "register", "adult", "--version", "v1.0.2"], repo)
    run(["gto", "assign", "adult", "--version", "v1.0.2", "--stage", "prod"], repo)
    run(["gto", "assign", "adult", "--version", "v1.0.1", "--stage", "prod", "--force"], repo)  # rollback
    overview = json.loads(run(["gto", "show", "--json"], repo).stdout)
    assert overview["adult"]["version"] == "v1.0.2"
    assert overview["adult"]["stage"]["prod"] == "v1.0.1"
