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

import atexit
import json
import logging
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


class GxRunner:
    """The process's GX context with one validation definition per dataset."""

    def __init__(self, folder: Path | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        from countyhealth.validation import expectations as _custom  # noqa: F401 - registers our expectations

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("countyhealth")
        self.definitions = {}
        self.rules: dict[str, list[Rule]] = {}
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

    def run(self, dataset: str, frame, parameters: dict):
        """Validate one chunk. GX's v1 ``Validator`` directly, not ``ValidationDefinition.run``: that also stores
        every COMPLETE result (all failing values and indices) in the context's results store, which in a
        long-lived process grows without bound and costs a serialisation per chunk. Results we want to keep
        for Data Docs are built from the (masked) issues instead (:mod:`.data_docs`)."""
        from great_expectations.validator.v1_validator import Validator

        definition = self.definitions[dataset]
        validator = Validator(batch_definition=definition.data, batch_parameters={"dataframe": frame},
                              result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"],
                                             "return_unexpected_index_query": False})
        return validator.validate_expectation_suite(definition.suite, parameters)


_lock = threading.Lock()
_runners: dict[str, GxRunner] = {}


def _release_gx() -> None:
    """At exit, drop GX before DuckDB's extension module is torn down: GX keeps references to the duckdb
    SQLAlchemy dialect in module globals, and nanobind (DuckDB's binding) otherwise prints a page of
    "leaked instance" warnings at interpreter exit — harmless, but noise in every task log."""
    import gc
    import sys

    _runners.clear()
    for name in [m for m in sys.modules if m.startswith(("great_expectations", "duckdb_engine"))]:
        del sys.modules[name]
    gc.collect()


def runner(folder: Path | None = None) -> GxRunner:
    key = str(folder or settings.expectations_dir())
    with _lock:
        if key not in _runners:
            if not _runners:
                atexit.register(_release_gx)
            _runners[key] = GxRunner(folder)
        return _runners[key]
