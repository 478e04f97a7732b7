"""Great Expectations Data Docs for a run: every suite, and every validated (batch, dataset) against it.

GX's own HTML site, built with a file-backed GX context rooted at ``settings.reports_dir()/gx`` (its
``great_expectations.yml``, suites and validation results live there, so the site index keeps the history of
earlier runs) into ``settings.reports_dir()/data_docs/index.html``.

What is rendered is not GX's raw COMPLETE result: that holds every failing value, ID numbers and phones
included. Each (batch, dataset) result is rebuilt from what validation keeps anyway — rows in, rows failing
per rule (``rule_counts``) and the issue values, already masked (``countyhealth.privacy``) — as a GX
``ExpectationSuiteValidationResult`` with SUMMARY-shaped results. That also makes the site buildable from
files at the end of a run, in any process, from batches validated by parallel tasks: pass the landed batch
directories (their ``validated/`` folder), or :class:`~countyhealth.validation.DatasetOutcome` objects.

Offline and quiet: a county intranet (卫生专网) has no internet, and nothing here should call out. GX's analytics
are off (``enable_analytics(False)``, ``GX_ANALYTICS_ENABLED=False``), and after GX renders, every page is
rewritten to load nothing from the network: the CDN scripts and styles (jQuery, Bootstrap, bootstrap-table, Vega,
Font Awesome) and remote images are dropped, and a local stylesheet (``static/countyhealth-offline.css``) keeps the
pages readable — GX renders its tables as HTML, so without the scripts a page loses sorting and filtering, never
content. (Vendoring the CDN libraries would keep those, at the price of shipping and patching a JavaScript stack.)

Rules of the mapping step (``<dataset>.conformance.parse.<column>``) are no expectation of the suite; they are
counted in the HTML run report (:mod:`.report`), not here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from countyhealth import model, settings

log = logging.getLogger(__name__)

SITE_NAME = "countyhealth"
SAMPLE_VALUES = 20  # failing values shown per rule (masked)


@dataclass
class ResultSummary:
    """What one (batch, dataset) validation showed, without any unmasked value."""

    dataset: str
    source_id: str
    batch_id: str
    rows_in: int
    rule_counts: dict[str, int]
    samples: dict[str, list] = field(default_factory=dict)  # rule_id -> masked failing values
    validated_at: str | None = None


def _samples(issues) -> dict[str, list]:
    out: dict[str, list] = {}
    if issues is None or issues.num_rows == 0:
        return out
    for rule_id, value in zip(issues.column("rule_id").to_pylist(), issues.column("value").to_pylist()):
        values = out.setdefault(rule_id, [])
        if len(values) < SAMPLE_VALUES:
            values.append(value)
    return out


def summaries_from_batch(batch_dir: Path) -> list[ResultSummary]:
    """The summaries of a validated landed batch (``validated/outcome.json`` and its issue files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from countyhealth import pipeline

    folder = Path(batch_dir) / pipeline.VALIDATED
    path = folder / pipeline.OUTCOME
    if not path.exists():
        raise FileNotFoundError(f"{batch_dir}: not validated yet (no {pipeline.VALIDATED}/{pipeline.OUTCOME}); "
                                "run `countyhealth batches revalidate BATCH_ID` first")
    outcome = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for dataset, res in outcome["datasets"].items():
        parts = [pq.read_table(folder / dataset / f"{kind}.parquet", columns=["rule_id", "value"])
                 for kind in ("quarantine", "findings") if (folder / dataset / f"{kind}.parquet").exists()]
        issues = pa.concat_tables(parts) if parts else None
        out.append(ResultSummary(dataset, outcome["source_id"], outcome["batch_id"], int(res["rows_in"]),
                                 dict(res.get("rule_counts") or {}), _samples(issues), outcome.get("validated_at")))
    return out


def batches_validated_since(since: dt.datetime) -> list[Path]:
    """Landed batches whose validation (``validated/outcome.json``) is from ``since`` (UTC, naive) or later —
    what a run validated, for ``build_data_docs(batches_validated_since(run_start), run_name=run_id)``."""
    from countyhealth import landing, pipeline

    out = []
    for path in landing.list_batches():
        outcome = path / pipeline.VALIDATED / pipeline.OUTCOME
        if outcome.exists():
            at = json.loads(outcome.read_text(encoding="utf-8")).get("validated_at")
            if at and dt.datetime.fromisoformat(at).replace(tzinfo=None) >= since:
                out.append(path)
    return out


def summary_from_outcome(outcome) -> ResultSummary:
    """The summary of an in-process :class:`~countyhealth.validation.DatasetOutcome`."""
    return ResultSummary(outcome.dataset, outcome.source_id, outcome.batch_id, outcome.rows_in,
                         dict(outcome.rule_counts), _samples(outcome.issues))


def _as_summaries(results) -> list[ResultSummary]:
    out: list[ResultSummary] = []
    for item in results:
        if isinstance(item, ResultSummary):
            out.append(item)
        elif isinstance(item, (str, Path)):
            out.extend(summaries_from_batch(Path(item)))
        elif hasattr(item, "issues") and hasattr(item, "rule_counts"):
            out.append(summary_from_outcome(item))
        else:
            raise TypeError(f"build_data_docs takes batch directories or DatasetOutcome objects, not {type(item)!r}")
    return out


def _suite_result(summary: ResultSummary, rules, run_id):
    """A GX ExpectationSuiteValidationResult rebuilt from a summary (counts and masked samples only)."""
    from collections import Counter

    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    results = []
    n = summary.rows_in
    for rule in rules:
        bad = int(summary.rule_counts.get(rule.rule_id, 0))
        sample = summary.samples.get(rule.rule_id, [])
        config = ExpectationConfiguration(type=rule.expectation_type, kwargs=dict(rule.kwargs),
                                          meta={"rule_id": rule.rule_id, "category": rule.category,
                                                "severity": rule.severity, "doc": rule.doc})
        counts = [{"value": v, "count": c} for v, c in Counter(map(str, sample)).most_common()]
        results.append(ExpectationValidationResult(
            success=bad == 0, expectation_config=config,
            result={"element_count": n, "unexpected_count": bad, "unexpected_percent": 100.0 * bad / n if n else 0.0,
                    "partial_unexpected_list": sample, "partial_unexpected_counts": counts},
            meta={"rule_id": rule.rule_id, "severity": rule.severity}))
    evaluated = len(results)
    ok = sum(r.success for r in results)
    return ExpectationSuiteValidationResult(
        success=ok == evaluated, results=results, suite_name=summary.dataset,
        statistics={"evaluated_expectations": evaluated, "successful_expectations": ok,
                    "unsuccessful_expectations": evaluated - ok,
                    "success_percent": 100.0 * ok / evaluated if evaluated else 100.0},
        meta={"run_id": run_id, "validation_time": run_id.run_time,
              # GX's page renderer titles the page from batch_spec.data_asset_name
              "batch_spec": {"data_asset_name": f"{summary.source_id} batch {summary.batch_id}",
                             "source_id": summary.source_id, "batch_id": summary.batch_id, "rows": n,
                             "validated_at": summary.validated_at},
              "active_batch_definition": {"datasource_name": summary.source_id, "data_connector_name": "landing",
                                          "data_asset_name": summary.dataset,
                                          "batch_identifiers": {"batch_id": summary.batch_id}}})


def _context(root: Path, site_dir: Path):
    """The file-backed GX context under reports/gx, its one Data Docs site writing to ``site_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # before GX reads it: nothing calls out
    import great_expectations as gx

    from countyhealth.validation import expectations as _custom  # noqa: F401 - suites use our expectation types

    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    if ctx.config.analytics_enabled is not False:
        ctx.enable_analytics(False)  # saved in great_expectations.yml
    site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    sites = ctx.list_data_docs_sites()
    for name in list(sites):
        if name != SITE_NAME:
            ctx.delete_data_docs_site(name)  # GX's default local_site would render a second copy
    if SITE_NAME in ctx.list_data_docs_sites():
        ctx.update_data_docs_site(SITE_NAME, site)
    else:
        ctx.add_data_docs_site(SITE_NAME, site)
    return ctx


def _sync_suites(ctx) -> dict:
    """Put the current suites (expectations/*.json) into the context; returns dataset -> rules."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    from countyhealth.validation import suites

    rules = {}
    for dataset in model.DATASET_NAMES:
        rules[dataset] = suites.load_rules(dataset)
        path = suites.suite_path(dataset)
        data = json.loads(path.read_text(encoding="utf-8"))
        expectations = [ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {}),
                                                 meta=e.get("meta", {})).to_domain_obj()
                        for e in data["expectations"]]
        ctx.suites.add_or_update(gx.ExpectationSuite(name=dataset, expectations=expectations,
                                                     meta=data.get("meta", {})))
    return rules


def _prune(ctx, site_dir: Path, before: dt.datetime) -> int:
    """Drop results (and their pages) of runs older than ``before``: the history stays bounded."""
    store = ctx.validation_results_store
    dropped = 0
    for key in store.list_keys():
        run_time = key.run_id.run_time
        if run_time is not None and run_time.replace(tzinfo=None) < before:
            store.remove_key(key)
            page = site_dir / "validations" / Path(*key.to_tuple()).with_suffix(".html")
            page.unlink(missing_ok=True)
            dropped += 1
    return dropped


def build_data_docs(results: Iterable, *, run_name: str | None = None, site_dir: Path | None = None,
                    keep_days: int = 60) -> Path:
    """Render GX Data Docs for one run and return the site's ``index.html``.

    ``results``: landed batch directories (validated) and/or :class:`DatasetOutcome` objects. Each becomes a
    validation result of its dataset's suite under ``run_name`` (default ``run-<UTC time>``); results older than
    ``keep_days`` are dropped from the site.
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    summaries = _as_summaries(results)
    root = settings.reports_dir()
    site_dir = Path(site_dir or root / "data_docs")
    site_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    run_name = run_name or f"run-{now:%Y%m%dT%H%M%S}"
    ctx = _context(root, site_dir)
    rules = _sync_suites(ctx)
    _prune(ctx, site_dir, now.replace(tzinfo=None) - dt.timedelta(days=keep_days))
    keys = []
    run_id = RunIdentifier(run_name=run_name, run_time=now)
    for s in summaries:
        if s.dataset not in rules:
            raise KeyError(f"batch {s.batch_id}: dataset {s.dataset!r} has no suite in expectations/")
        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=s.dataset),
                                         run_id=run_id, batch_identifier=f"{s.source_id}__{s.batch_id}")
        ctx.validation_results_store.set(key, _suite_result(s, rules[s.dataset], run_id))
        keys.append(key)
    suite_keys = [ExpectationSuiteIdentifier(name=d) for d in model.DATASET_NAMES]
    ctx.build_data_docs(site_names=[SITE_NAME], resource_identifiers=suite_keys + keys)
    make_offline(site_dir)
    from countyhealth.landing import make_private

    make_private(root / "gx")  # GX writes with the umask; its results name facilities and failing values
    make_private(site_dir)
    index = site_dir / "index.html"
    log.info("Data Docs for %d validation result(s) of run %s: %s", len(keys), run_name, index)
    return index


def reset(site_dir: Path | None = None) -> None:
    """Remove the Data Docs site and GX's stored results (e.g. after changing the retention)."""
    root = settings.reports_dir()
    shutil.rmtree(Path(site_dir or root / "data_docs"), ignore_errors=True)
    shutil.rmtree(root / "gx", ignore_errors=True)


_REMOTE_SCRIPT = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^>]*>\s*</script>", re.I)
_REMOTE_LINK = re.compile(r"<link[^>]*\shref=[\"']https?://[^>]*>", re.I)
_REMOTE_IMG = re.compile(r"<img[^>]*\ssrc=[\"']https?://[^>]*>", re.I)
_REMOTE_CSS_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)", re.I)
OFFLINE_CSS = """/* countyhealth: Data Docs without the CDN stylesheets (see countyhealth.validation.data_docs) */
body { font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 1rem 2rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0; } th, td { border: 1px solid #ccc; padding: .2rem .5rem; }
th { background: #f3f3f3; } .hide, .d-none { display: none; } a { color: #0b5cad; }
.navbar { border-bottom: 1px solid #ddd; padding-bottom: .5rem; margin-bottom: 1rem; }
"""


def make_offline(site_dir: Path) -> int:
    """Rewrite a rendered site so that opening it loads nothing from the network; returns the pages rewritten."""
    static = site_dir / "static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "countyhealth-offline.css").write_text(OFFLINE_CSS, encoding="utf-8")
    for css in static.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        if _REMOTE_CSS_URL.search(text):
            css.write_text(_REMOTE_CSS_URL.sub("none", text), encoding="utf-8")
    pages = 0
    for page in site_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        clean = _REMOTE_IMG.sub("", _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", text)))
        if "countyhealth-offline.css" not in clean:
            up = "../" * (len(page.relative_to(site_dir).parts) - 1)
            clean = clean.replace("</head>", f'<link rel="stylesheet" href="{up}static/countyhealth-offline.css">'
                                            "</head>", 1)
        if clean != text:
            page.write_text(clean, encoding="utf-8")
            pages += 1
    return pages
