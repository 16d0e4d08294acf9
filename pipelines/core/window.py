"""Windows of traffic as additive counts: the sufficient statistics that monitoring compares.

A window (a log partition, a day, the training split) is reduced by DuckDB to counts over bins that the reference
fixes: per feature, counts per bin (numeric: quantile cuts of the training split, plus below-range, above-range and
null; categorical: the training split's categories, "other" and null) and the sum of values per bin; the champion's
scores in equal-width bins with their sums and, where a delayed label has arrived, label counts; decisions, the
confusion matrix, and per-group counts for every sensitive attribute and intersection; label lags in bins.
Counts of two partitions add up to the counts of their union (:meth:`WindowCounts.merge`, tested), so a day is the
sum of its hours and a 1M-row log is read one file at a time.

The same SQL counts a log (``read_json`` over JSONL) and a split held in memory (a registered Arrow table), so the
reference and the windows are counted by one code path.
"""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from pipelines.core.groups import JOIN  # groups named as the evaluation names them

OTHER = "(other)"
NULL = "(null)"
# label lag bins, seconds: <1 min, <1 h, <1 d, <7 d, <30 d, later
LAG_EDGES = [60.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0]
GROUP_FIELDS = ["rows", "selected", "labelled", "label_positive", "true_positive", "false_positive"]


@dataclass(frozen=True)
class FeatureBins:
    """How one feature is counted: ``cuts`` (numeric, ascending, first = training min, last = training max) or
    ``categories`` (categorical, the training split's most frequent)."""

    name: str
    kind: str  # "numeric" | "categorical"
    cuts: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """One label per counted bin, in order (the last is always the null bin)."""
        if self.kind == "categorical":
            return [*self.categories, OTHER, NULL]
        inner = [f"[{a:g}, {b:g})" for a, b in zip(self.cuts[:-1], self.cuts[1:], strict=False)]
        if inner:
            inner[-1] = inner[-1][:-1] + "]"
        return [f"< {self.cuts[0]:g}", *inner, f"> {self.cuts[-1]:g}", NULL]

    @property
    def size(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class WindowSpec:
    """What a window is counted over: the features' bins, the score bins, the groups (column lists)."""

    features: list[FeatureBins]
    groups: list[list[str]]
    score_bins: int = 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [vars(f) for f in self.features],
            "groups": self.groups,
            "score_bins": self.score_bins,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSpec:
        return cls([FeatureBins(**f) for f in data["features"]], data["groups"], data["score_bins"])


def group_name(columns: list[str]) -> str:
    return " x ".join(columns)


@dataclass
class WindowCounts:
    """Additive counts of one window. ``arrays`` maps a key (``feature:<name>``, ``sums:<name>``, ``score:*``,
    ``label:*``, ``lag``, ``confusion``) to a vector of counts; ``groups`` maps a group set to its groups'
    :data:`GROUP_FIELDS` counts; ``first``/``last`` are the window's first and last ISO timestamps."""

    rows: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    first: str | None = None
    last: str | None = None

    def merge(self, other: WindowCounts) -> WindowCounts:
        """The counts of both windows together (exact: every count is a sum, the times a min and a max)."""
        arrays = {k: v.copy() for k, v in self.arrays.items()}
        for key, value in other.arrays.items():
            arrays[key] = arrays[key] + value if key in arrays else value.copy()
        groups: dict[str, dict[str, list[float]]] = {
            k: {g: list(c) for g, c in v.items()} for k, v in self.groups.items()
        }
        for key, table in other.groups.items():
            mine = groups.setdefault(key, {})
            for g, counts in table.items():
                mine[g] = [a + b for a, b in zip(mine.get(g, [0.0] * len(counts)), counts, strict=True)]
        times = [t for t in (self.first, other.first) if t]
        lasts = [t for t in (self.last, other.last) if t]
        return WindowCounts(
            self.rows + other.rows,
            arrays,
            groups,
            min(times) if times else None,
            max(lasts) if lasts else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "arrays": {k: [float(x) for x in v] for k, v in sorted(self.arrays.items())},
            "groups": {k: dict(sorted(v.items())) for k, v in sorted(self.groups.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowCounts:
        arrays = {k: np.asarray(v, dtype=float) for k, v in data["arrays"].items()}
        return cls(data["rows"], arrays, data["groups"], data.get("first"), data.get("last"))


def _numeric_bins(values: np.ndarray, cuts: list[float]) -> np.ndarray:
    """Bin index per value: 0 below cuts[0], 1..k-1 inside (the last inner bin includes cuts[-1]), k above,
    k+1 null (NaN)."""
    c = np.asarray(cuts, dtype=float)
    k = len(c)
    idx = np.searchsorted(c, values, side="right")
    idx = np.where(values == c[-1], k - 1, idx)
    idx = np.where(np.isnan(values), k + 1, idx)
    return idx


def _fetch_float(con: duckdb.DuckDBPyConnection, sql: str) -> np.ndarray:
    column = con.execute(sql).fetchnumpy()
    values = next(iter(column.values()))
    if np.ma.isMaskedArray(values):
        return np.ma.filled(values.astype(float), np.nan)
    return np.asarray(values, dtype=float)


def count_table(con: duckdb.DuckDBPyConnection, table: str, spec: WindowSpec) -> WindowCounts:
    """Count the rows of ``table``: columns ``score``, ``decision``, ``label`` (null when not yet known),
    ``time``, ``label_time`` (ISO strings or null) and one column per feature."""
    q = f'"{table}"'
    valid_time = "TRY_CAST(time AS TIMESTAMPTZ) IS NOT NULL"  # a time that is not one is no first or last
    rows, first, last = con.execute(
        f"SELECT count(*), min(time) FILTER (WHERE {valid_time}), max(time) FILTER (WHERE {valid_time}) FROM {q}"
    ).fetchone() or (
        0,
        None,
        None,
    )
    out = WindowCounts(int(rows), {}, {}, first, last)
    labels = _fetch_float(con, f"SELECT CAST(label AS DOUBLE) FROM {q}")  # NaN: no label yet
    for f in spec.features:
        col = f'"{f.name}"'
        # per bin: all rows, and the labelled rows of each class (P(x | y): what label shift leaves unchanged)
        if f.kind == "numeric":
            values = _fetch_float(con, f"SELECT CAST({col} AS DOUBLE) FROM {q}")
            idx = _numeric_bins(values, f.cuts)
            out.arrays[f"feature:{f.name}"] = np.bincount(idx, minlength=f.size).astype(float)
            # sums for the bins' mean values; absurd magnitudes are capped (they fall in the above/below bins)
            capped = np.nan_to_num(np.clip(values, -1e12, 1e12))
            out.arrays[f"sums:{f.name}"] = np.bincount(idx, weights=capped, minlength=f.size)
            for y in (0, 1):
                out.arrays[f"class{y}:{f.name}"] = np.bincount(idx[labels == y], minlength=f.size).astype(
                    float
                )
        else:
            counts = np.zeros((3, f.size))  # all, class 0, class 1
            position = {c: i for i, c in enumerate(f.categories)}
            sql = f"SELECT CAST({col} AS VARCHAR), label, count(*) FROM {q} GROUP BY ALL"
            for value, label, n in con.execute(sql).fetchall():
                i = f.size - 1 if value is None else position.get(value, f.size - 2)
                counts[0, i] += n
                if label is not None:
                    counts[1 + int(label), i] += n
            out.arrays[f"feature:{f.name}"] = counts[0]
            out.arrays[f"class0:{f.name}"] = counts[1]
            out.arrays[f"class1:{f.name}"] = counts[2]
    b = spec.score_bins
    score_bin = f"least(greatest(floor(score * {b}), 0), {b - 1})::INTEGER"
    arrays = {
        k: np.zeros(b)
        for k in (
            "score:count",
            "score:sum",
            "score:decided",
            "label:count",
            "label:positive",
            "label:score_sum",
            "label:score_label",
        )
    }
    sql = (
        f"SELECT {score_bin} AS b, count(*), sum(score), sum(decision), count(label), sum(label), "
        f"sum(CASE WHEN label IS NOT NULL THEN score END), sum(score * label) FROM {q} "
        "WHERE score IS NOT NULL GROUP BY 1"
    )
    for row in con.execute(sql).fetchall():
        bin_ = row[0]
        for key, value in zip(arrays, row[1:], strict=True):
            arrays[key][bin_] = value or 0.0
    out.arrays |= arrays
    sums = con.execute(
        f"SELECT sum(score * score), sum(CASE WHEN label IS NOT NULL THEN score * score END) FROM {q}"
    ).fetchone()
    out.arrays["score:sum_sq"] = np.array(
        [(sums[0] if sums else 0.0) or 0.0, (sums[1] if sums else 0.0) or 0.0]
    )
    confusion = np.zeros(4)  # tn, fp, fn, tp
    for d, y, n in con.execute(
        f"SELECT decision, label, count(*) FROM {q} WHERE label IS NOT NULL GROUP BY ALL"
    ).fetchall():
        confusion[2 * int(y) + int(d)] += n
    out.arrays["confusion"] = confusion
    lag = np.zeros(len(LAG_EDGES) + 1)
    lags = _fetch_float(
        con,
        f"SELECT epoch(TRY_CAST(label_time AS TIMESTAMPTZ)) - epoch(TRY_CAST(time AS TIMESTAMPTZ)) AS lag_s FROM {q} "
        "WHERE label IS NOT NULL AND lag_s IS NOT NULL",  # a time that does not parse has no lag
    )
    if lags.size:
        lag += np.bincount(np.searchsorted(LAG_EDGES, lags, side="right"), minlength=lag.size)
    out.arrays["lag"] = lag
    for columns in spec.groups:
        keys = f" || '{JOIN}' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '{NULL}')" for c in columns)
        sql = (
            f"SELECT {keys} AS g, count(*), sum(decision), count(label), sum(label), "
            f"sum(CASE WHEN label = 1 AND decision = 1 THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN label = 0 AND decision = 1 THEN 1 ELSE 0 END) FROM {q} GROUP BY 1"
        )
        out.groups[group_name(columns)] = {
            str(g): [float(v or 0) for v in rest] for g, *rest in con.execute(sql).fetchall()
        }
    return out


def log_schema(spec: WindowSpec) -> dict[str, str]:
    """The DuckDB column types of a prediction-log line (``features`` as a struct of the monitored features)."""
    features = ", ".join(
        f'"{f.name}" {"DOUBLE" if f.kind == "numeric" else "VARCHAR"}' for f in spec.features
    )
    return {
        "request_id": "VARCHAR",
        "time": "VARCHAR",
        "role": "VARCHAR",
        "shadow": "BOOLEAN",
        "score": "DOUBLE",
        "decision": "BIGINT",
        "features": f"STRUCT({features})",
    }


def line_count(path: Path) -> int:
    """Lines of a text file, read in 16 MiB chunks (the log's quality figures; a blank line counts as unreadable);
    a ``.gz`` file is counted uncompressed, as DuckDB reads it."""
    n, last = 0, b"\n"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")  # a last line without its newline (a write cut short) counts too


def count_lines(paths: list[Path]) -> int:
    return sum(line_count(p) for p in paths)


VALID = "score IS NOT NULL AND isfinite(score) AND score BETWEEN 0 AND 1 AND decision IN (0, 1)"


BATCH_BYTES = 256 << 20  # log files parsed together: 1M logged rows (496 MB) in 2 batches, 501 MiB peak


def batches(files: list[Path], limit: int = BATCH_BYTES) -> list[list[Path]]:
    """``files`` in order, grouped so that each group's size stays within ``limit`` bytes (a larger file alone)."""
    out: list[list[Path]] = []
    size = 0
    for path in files:
        n = path.stat().st_size if path.exists() else 0
        if not out or size + n > limit:
            out.append([])
            size = 0
        out[-1].append(path)
        size += n
    return out


def count_log(
    files: list[Path],
    spec: WindowSpec,
    labels: list[Path] | None = None,
    threads: int = 2,
    batch_bytes: int = BATCH_BYTES,
) -> WindowCounts:
    """Counts of the champion's answered traffic in JSONL prediction-log ``files`` (shadow copies and the
    challenger's answers are left out), joined by ``request_id`` with the delayed labels in ``labels`` (JSONL lines
    ``{"request_id", "label", "time"}`` with label 0 or 1; the last label of a request wins). Files are parsed in
    batches of at most ``batch_bytes`` (one parse and one join per batch: measured on 1M rows in 10 files, a
    batch per file took 6.3 s, two batches 2.9 s), and the batches' counts merged.

    Nothing unreadable stops it, and nothing is dropped unseen: ``arrays["quality"]`` counts log lines, lines that
    parsed and champion answers with an invalid score or decision (not a number in [0, 1], not 0 or 1), additive
    over partitions; ``arrays["label_quality"]`` counts the label feed's lines, labels that parsed and labels that
    are not 0 or 1 (the feed is read whole by each call: it is joined, not partitioned). The monitor judges a feed
    with too many as broken."""
    total = WindowCounts()
    quality = np.zeros(3)  # log lines, parsed, invalid answers
    label_quality = np.zeros(3)  # label lines, labels parsed, invalid labels
    con = duckdb.connect(config={"threads": threads})
    try:
        label_files = [str(p) for p in labels or []]
        if label_files:
            con.execute(
                "CREATE TEMP TABLE label_lines AS SELECT * FROM read_json(?, format='newline_delimited', "
                "columns={'request_id': 'VARCHAR', 'label': 'BIGINT', 'time': 'VARCHAR'}, ignore_errors=true)",
                [label_files],
            )
            label_quality[0] = sum(line_count(Path(p)) for p in label_files)
            parsed, invalid = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE label NOT IN (0, 1) OR label IS NULL OR request_id IS NULL) "
                "FROM label_lines"
            ).fetchone() or (0, 0)
            label_quality[1], label_quality[2] = parsed, invalid
            con.execute(
                "CREATE TEMP TABLE labels AS SELECT request_id, arg_max(label, time)::INTEGER AS label, "
                "max(time) AS label_time FROM label_lines WHERE label IN (0, 1) AND request_id IS NOT NULL "
                "GROUP BY request_id"
            )
            con.execute("DROP TABLE label_lines")
        else:
            con.execute("CREATE TEMP TABLE labels (request_id VARCHAR, label INTEGER, label_time VARCHAR)")
        schema = log_schema(spec)
        feature_cols = ", ".join(f'l.features."{f.name}" AS "{f.name}"' for f in spec.features)
        source = "read_json(?, format='newline_delimited', columns=?, ignore_errors=true)"
        for batch in batches(files, batch_bytes):
            con.execute("DROP VIEW IF EXISTS w")
            con.execute("DROP TABLE IF EXISTS parsed")
            with ThreadPoolExecutor(1) as pool:  # lines counted while DuckDB parses (it releases the GIL)
                lines = pool.submit(count_lines, batch)
                con.execute(  # one parse of the batch: the columns counted, joined with the labels
                    f"CREATE TEMP TABLE parsed AS SELECT l.request_id, l.time, l.role, l.shadow, l.score, "
                    f"l.decision, {feature_cols}, b.label, b.label_time FROM {source} l "
                    "LEFT JOIN labels b USING (request_id)",
                    [[str(p) for p in batch], schema],
                )
                quality[0] += lines.result()
            n_parsed, invalid = con.execute(  # an unreadable line comes back as a row of nulls: not parsed
                "SELECT count(*) FILTER (WHERE request_id IS NOT NULL AND role IS NOT NULL), "
                f"count(*) FILTER (WHERE role = 'champion' AND NOT ({VALID})) FROM parsed"
            ).fetchone() or (0, 0)
            quality[1] += n_parsed
            quality[2] += invalid
            con.execute(
                "CREATE TEMP VIEW w AS SELECT * FROM parsed "
                f"WHERE role = 'champion' AND NOT coalesce(shadow, false) AND {VALID}"
            )
            total = total.merge(count_table(con, "w", spec))
    finally:
        con.close()
    total.arrays["quality"] = quality
    total.arrays["label_quality"] = label_quality
    return total
