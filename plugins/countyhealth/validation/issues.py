"""The shape of a validation issue, shared by mapping (connectors.mapping) and the GX checks.

An issue names one row of a batch (``_row``: its position in the landed batch), the rule it broke (``rule_id``,
stable across runs: ``<dataset>.<category>.<name>``), the rule's category (OHDSI DQD's three: conformance,
completeness, plausibility), its severity (``error``: the row is quarantined; ``warning``: a finding, the row
still loads), the canonical column and the offending value — masked when it is an ID number or phone.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

CATEGORIES = ("conformance", "completeness", "plausibility")
SEVERITIES = ("error", "warning")

ISSUE_SCHEMA = pa.schema([
    pa.field("_row", pa.int64(), nullable=False),
    pa.field("rule_id", pa.string(), nullable=False),
    pa.field("category", pa.string(), nullable=False),
    pa.field("severity", pa.string(), nullable=False),
    pa.field("column", pa.string()),
    pa.field("value", pa.string()),
])


def issues_table(rows: Iterable[tuple[int, str, str, str, str | None, str | None]]) -> pa.Table:
    """Build an issue table from ``(_row, rule_id, category, severity, column, value)`` tuples."""
    cols = list(zip(*rows)) or [[] for _ in ISSUE_SCHEMA]
    return pa.Table.from_arrays([pa.array(list(c), f.type) for c, f in zip(cols, ISSUE_SCHEMA)], schema=ISSUE_SCHEMA)


def empty() -> pa.Table:
    return ISSUE_SCHEMA.empty_table()
