"""The Great Expectations suites (``expectations/<dataset>.json``) and the GX objects that run them.

A suite file is GX's own suite JSON (``name`` + ``expectations``: ``type``, ``kwargs``, ``meta``) with our
``meta`` on every expectation: ``rule_id`` (stable across runs: ``<dataset>.<category>.<name>``),
``category`` (OHDSI DQD's conformance / completeness / plausibility), ``severity`` (``error`` quarantines
the row, ``warning`` records a finding), ``column`` (the column a failure is reported on) and ``doc``.
Run-time values are GX suite parameters: ``{"$PARAMETER": "now"}`` (the load time, for "not in the
future") and ``{"$PARAMETER": "code_system"}`` (the source's local lab codes).

One ephemeral GX context per process, built on first use and reused (GX's import costs ~4 s; building the
context and suites ~0.5 s): every chunk of every batch validated in a process shares it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from countyhealth import model, settings

log = logging.getLogger(__name__)
CATEGORIES = ("conformance", "completeness", "plausibility")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    dataset: str
    category: str
    severity: str
    column: str | None
    doc: str
    expectation_type: str
    kwargs: dict


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the expectation."""


def suite_path(dataset: str, folder: Path | None = None) -> Path:
    return (folder or settings.expectations_dir()) / f"{dataset}.json"


@lru_cache(maxsize=32)
def _read(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_rules(dataset: str, folder: Path | None = None) -> list[Rule]:
    path = suite_path(dataset, folder)
    if not path.exists():
        raise SuiteError(f"expectations/{path.name} is missing: every dataset needs a suite")
    data = _read(str(path), path.stat().st_mtime)
    rules = []
    seen = set()
    for i, exp in enumerate(data.get("expectations", [])):
        meta = exp.get("meta") or {}
        where = f"expectations/{path.name}: expectation {i} ({exp.get('type')})"
        for key in ("rule_id", "category", "severity"):
            if not meta.get(key):
                raise SuiteError(f"{where}: meta.{key} is missing")
        if meta["category"] not in CATEGORIES or meta["severity"] not in ("error", "warning"):
            raise SuiteError(f"{where}: category must be one of {CATEGORIES} and severity error|warning")
        if not meta["rule_id"].startswith(f"{dataset}.{meta['category']}."):
            raise SuiteError(f"{where}: rule_id must start with '{dataset}.{meta['category']}.'")
        if meta["rule_id"] in seen:
            raise SuiteError(f"{where}: rule_id {meta['rule_id']} is used twice")
        seen.add(meta["rule_id"])
        kwargs = exp.get("kwargs", {})
        column = meta.get("column") or kwargs.get("column") or kwargs.get("column_A") or \
            (kwargs.get("column_list") or [None])[0]
        rules.append(Rule(meta["rule_id"], dataset, meta["category"], meta["severity"], column, meta.get("doc", ""),
                          exp["type"], kwargs))
    return rules


def all_rules(folder: Path | None = None) -> list[Rule]:
    return [r for ds in model.DATASET_NAMES for r in load_rules(ds, folder)]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def columns_used(rules: list[Rule]) -> list[str]:
    """Every column the rules read (``column``, ``column_A``/``column_B``, ``column_list`` and names inside a
    ``row_condition``), in first-use order. Validation hands GX only these: GX copies and fingerprints the
    whole frame per chunk and per expectation domain, so unused columns cost time for nothing."""
    seen: dict[str, None] = {}
    for r in rules:
        kw = r.kwargs
        for name in [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]:
            if name:
                seen.setdefault(name, None)
        for name in _NAME.findall(kw.get("row_condition") or ""):
            seen.setdefault(name, None)
    return list(seen)


# expectations that fail on missing values: never skipped, whatever the chunk holds
_NULLS_FAIL = {"expect_column_values_to_not_be_null", "expect_any_of_columns_to_be_present"}


def rule_columns(rule: Rule) -> list[str]:
    """The columns a rule judges (not those of its row_condition)."""
    kw = rule.kwargs
    return [c for c in [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])] if c]


def vacuous(rule: Rule, all_null: set[str]) -> bool:
    """True when the rule cannot fail on this chunk because the columns it judges hold no value at all (GX
    ignores missing values in every expectation but the two in ``_NULLS_FAIL``; a column-pair rule ignores
    rows where either is missing). Skipping such rules saves GX's fixed cost per expectation — ~25 ms, which
    is most of the time on the many small nightly batches, where sources leave whole columns empty."""
    if rule.expectation_type in _NULLS_FAIL:
        return False
    cols = rule_columns(rule)
    if rule.expectation_type == "expect_column_pair_values_a_to_be_greater_than_b":
        return any(c in all_null for c in cols)
    return bool(cols) and all(c in all_null for c in cols)


class GxRunner:
    """The process's GX context with one validation definition per dataset."""

    def __init__(self, folder: Path | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        from countyhealth.validation import expectations as _custom  # noqa: F401 - registers our expectations

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("countyhealth")
        self.definitions = {}
        self._subsets: dict[tuple[str, frozenset], object] = {}  # suites without the vacuous rules of a chunk
        self.rules: dict[str, list[Rule]] = {}
        self.columns: dict[str, list[str]] = {}  # columns each dataset's suite reads
        for dataset in model.DATASET_NAMES:
            path = suite_path(dataset, folder)
            data = _read(str(path), path.stat().st_mtime)
            rules = load_rules(dataset, folder)
            expectations = []
            for exp in data["expectations"]:
                try:
                    expectations.append(ExpectationConfiguration(type=exp["type"], kwargs=exp.get("kwargs", {}),
                                                                 meta=exp.get("meta", {})).to_domain_obj())
                except Exception as e:  # noqa: BLE001 - GX raises various errors for a bad expectation
                    raise SuiteError(f"expectations/{path.name}: {exp.get('meta', {}).get('rule_id')}: "
                                     f"{type(e).__name__}: {e}") from None
            suite = self.context.suites.add(gx.ExpectationSuite(name=dataset, expectations=expectations))
            batch_def = source.add_dataframe_asset(dataset).add_batch_definition_whole_dataframe("batch")
            self.definitions[dataset] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{dataset}_validation", data=batch_def, suite=suite))
            self.rules[dataset] = rules
            self.columns[dataset] = columns_used(rules)

    def suite_for(self, dataset: str, skip: frozenset = frozenset()):
        """The dataset's suite, or (cached) a copy without the rules in ``skip``."""
        suite = self.definitions[dataset].suite
        if not skip:
            return suite
        key = (dataset, skip)
        if key not in self._subsets:
            from great_expectations.expectations.expectation_configuration import (
                ExpectationConfiguration,
            )

            keep = [ExpectationConfiguration(type=c.type, kwargs=c.kwargs, meta=c.meta).to_domain_obj()
                    for c in suite.expectation_configurations if (c.meta or {}).get("rule_id") not in skip]
            # not added to the context: the v1 Validator only reads the expectations
            self._subsets[key] = self.gx.ExpectationSuite(name=dataset, expectations=keep)
        return self._subsets[key]

    def run(self, dataset: str, frame, parameters: dict, skip: frozenset = frozenset()):
        """Validate one chunk (without the rules in ``skip``). GX's v1 ``Validator`` directly, not
        ``ValidationDefinition.run``: that also stores every COMPLETE result (all failing values and indices)
        in the context's results store, which in a long-lived process grows without bound and costs a
        serialisation per chunk. Results kept for Data Docs are built from the masked issues (:mod:`.data_docs`)."""
        from great_expectations.validator.v1_validator import Validator

        definition = self.definitions[dataset]
        validator = Validator(batch_definition=definition.data, batch_parameters={"dataframe": frame},
                              # failing rows come back as index labels: _frame() indexes the chunk by _row
                              result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False})
        return validator.validate_expectation_suite(self.suite_for(dataset, skip), parameters)


_lock = threading.Lock()
_runners: dict[str, GxRunner] = {}


def runner(folder: Path | None = None) -> GxRunner:
    """The process's GX runner for the suites in ``folder`` (default ``expectations/``), built on first use.
    Suites are read once per process: an edited suite takes effect in the next task (Airflow starts one)."""
    key = str(folder or settings.expectations_dir())
    with _lock:
        if key not in _runners:
            _runners[key] = GxRunner(folder)
        return _runners[key]


# ---- the rule catalogue in docs/validation.md ---------------------------------------------------------

CATALOGUE_START = "<!-- rule-catalogue:start (generated from expectations/*.json: python -m countyhealth.validation.suites --write-docs) -->"
CATALOGUE_END = "<!-- rule-catalogue:end -->"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def catalogue_markdown(folder: Path | None = None) -> str:
    """Every rule of every suite as Markdown tables, one per dataset (what docs/validation.md shows)."""
    out = []
    for dataset in model.DATASET_NAMES:
        rules = load_rules(dataset, folder)
        out.append(f"\n### {dataset} ({len(rules)} rules)\n")
        out.append("| rule id | category | severity | column | expectation | what it checks |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for r in rules:
            out.append(f"| `{r.rule_id}` | {r.category} | {r.severity} | {_cell(r.column or '')} | "
                       f"`{r.expectation_type}` | {_cell(r.doc)} |")
    return "\n".join(out).lstrip("\n") + "\n"


def docs_path() -> Path:
    return settings.project_home() / "docs" / "validation.md"


def sync_catalogue(*, write: bool, path: Path | None = None) -> bool:
    """True when docs/validation.md shows the current catalogue; with ``write`` bring it up to date."""
    path = path or docs_path()
    text = path.read_text(encoding="utf-8")
    if CATALOGUE_START not in text or CATALOGUE_END not in text:
        raise SuiteError(f"{path.name}: the markers {CATALOGUE_START!r} … {CATALOGUE_END!r} are missing")
    head, rest = text.split(CATALOGUE_START, 1)
    _, tail = rest.split(CATALOGUE_END, 1)
    new = f"{head}{CATALOGUE_START}\n{catalogue_markdown()}{CATALOGUE_END}{tail}"
    if write and new != text:
        path.write_text(new, encoding="utf-8")
    return new == text


if __name__ == "__main__":
    import sys

    if "--write-docs" in sys.argv:
        sync_catalogue(write=True)
        print(f"wrote the rule catalogue into {docs_path().name}")
    else:
        print(catalogue_markdown())
