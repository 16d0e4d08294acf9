"""Where each system's data, artifacts and reports live: the one place that spells the layout.

Every system-specific path is ``<top>/<system>/...`` under the design's top-level folders, so systems never share
a file and a change to one system's config or data reruns only that system's DVC stages. dvc.yaml writes the same
paths with ``${item.system}``; ``tests/unit/test_repo.py`` checks the two agree.

| path | holds | written by |
|---|---|---|
| ``data/<s>/raw`` | pinned source files (immutable) | people, by pull request |
| ``data/<s>/interim`` | typed tables, one per source file | ingest |
| ``data/<s>/validated`` | tables that passed the contract | validate |
| ``data/<s>/processed`` | train / valid / test | split |
| ``data/<s>/production`` | a collected window of traffic and labels | make monitor (collect) |
| ``artifacts/<s>/candidates/<model>`` | every trained model | train_baselines, train, mitigate |
| ``artifacts/<s>/champion``, ``challenger`` | promoted models with ``release.json`` | select |
| ``artifacts/<s>/serving``, ``bentoml`` | the service spec, the BentoML store with the bento | package |
| ``artifacts/<s>/monitor`` | the monitor's reference (counts, calibrated thresholds) | monitor |
| ``reports/<s>/...`` | data reports, evaluations, gates, monitoring, site pages | validate ... report, monitor |
| ``logs/runs/<s>``, ``var/<s>`` | run records, checkpoints (runtime state, git-ignored) | every stage |
| ``logs/predictions/<s>``, ``logs/labels/<s>`` | the live prediction log and delayed labels (git-ignored) | the service, replay |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PRODUCTION_README = """# Production window of `{system}`

`make monitor SYSTEM={system}` collects the live prediction log, the delayed labels and a scrape of the service's
`/metrics` here, then runs the `monitor@{system}` stage on them. This file is the only thing committed when no
window has been collected: the monitor then reports "insufficient data".
"""

SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class SystemPaths:
    """Paths of one system, relative to the repository root (the working directory of every stage)."""

    system: str

    def __post_init__(self) -> None:
        if not SYSTEM_NAME.match(self.system):
            raise ValueError(
                f"system name {self.system!r} must be lowercase letters, digits and _, starting with a letter "
                "(it becomes a folder, a DVC stage key, a Prometheus metric prefix and a bento name)"
            )

    # -- data --------------------------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return Path("data") / self.system

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def interim(self) -> Path:
        return self.data / "interim"

    @property
    def validated(self) -> Path:
        return self.data / "validated"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def production(self) -> Path:
        """A collected window of production traffic: ``predictions/*.jsonl``, ``labels/*.jsonl``, ``metrics.prom``."""
        return self.data / "production"

    # -- artifacts ---------------------------------------------------------------------------------------------
    @property
    def artifacts(self) -> Path:
        return Path("artifacts") / self.system

    @property
    def candidates(self) -> Path:
        return self.artifacts / "candidates"

    def candidate(self, model: str) -> Path:
        return self.candidates / model

    def release(self, role: str) -> Path:
        """``artifacts/<s>/champion`` or ``artifacts/<s>/challenger``."""
        return self.artifacts / role

    @property
    def serving(self) -> Path:
        return self.artifacts / "serving"

    @property
    def serving_spec(self) -> Path:
        return self.serving / "serving.json"

    @property
    def bentoml(self) -> Path:
        return self.artifacts / "bentoml"

    @property
    def monitor_reference(self) -> Path:
        return self.artifacts / "monitor" / "reference.json"

    # -- reports -----------------------------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        return Path("reports") / self.system

    @property
    def data_reports(self) -> Path:
        return self.reports / "data"

    @property
    def evals(self) -> Path:
        return self.reports / "eval"

    @property
    def train_reports(self) -> Path:
        return self.reports / "train"

    @property
    def gate(self) -> Path:
        return self.reports / "gate.json"

    @property
    def package_report(self) -> Path:
        return self.reports / "package.json"

    @property
    def site_pages(self) -> Path:
        return self.reports / "site"

    @property
    def monitor_reports(self) -> Path:
        return self.reports / "monitor"

    # -- runtime state (git-ignored, never a DVC output) -------------------------------------------------------
    @property
    def runs(self) -> Path:
        return Path("logs/runs") / self.system

    @property
    def var(self) -> Path:
        return Path("var") / self.system

    @property
    def prediction_logs(self) -> Path:
        """Where ``make serve`` has the service write its prediction log."""
        return Path("logs/predictions") / self.system

    @property
    def label_logs(self) -> Path:
        """Where delayed labels (user outcomes) arrive, JSONL ``{"request_id", "label", "time"}``."""
        return Path("logs/labels") / self.system
