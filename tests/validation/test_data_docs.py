"""GX Data Docs for a run: the site exists, names every suite, shows each validated batch — with masked values."""

from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq

from canonical_rows import BASE, ID, context, table

from countyhealth import model, privacy, settings
from countyhealth.validation import data_docs, validate_dataset

BAD_ID = "350125198001011239"


def _outcomes():
    person = validate_dataset("person", table("person", [BASE["person"], {**BASE["person"], "id_number": BAD_ID}]),
                              context(batch_id="b-person"))
    lab = validate_dataset("lab_result", table("lab_result", [BASE["lab_result"],
                                                              {**BASE["lab_result"], "value_numeric": 99000.0}]),
                           context(batch_id="b-lab"))
    return person, lab


def _site_text(folder) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.html"))


def test_data_docs_name_every_suite_and_each_validated_batch():
    person, lab = _outcomes()
    index = data_docs.build_data_docs([person, lab], run_name="nightly-1")
    site = settings.reports_dir() / "data_docs"
    assert index == site / "index.html" and index.exists()
    text = index.read_text(encoding="utf-8")
    for dataset in model.DATASET_NAMES:
        assert dataset in text, f"index does not name the {dataset} suite"
        assert (site / "expectations" / f"{dataset}.html").exists()
    pages = sorted(site.glob("validations/*/nightly-1/*/*.html"))
    assert [p.relative_to(site).parts[1] for p in pages] == ["lab_result", "person"]
    lab_page = next(p for p in pages if p.parts[-4] == "lab_result").read_text(encoding="utf-8")
    assert "src batch b-lab" in lab_page and "99000.0" in lab_page  # the failing value is shown …
    person_page = next(p for p in pages if p.parts[-4] == "person").read_text(encoding="utf-8")
    assert privacy.mask_id(BAD_ID) in person_page  # … masked when it is an ID number
    everything = _site_text(site) + "".join(p.read_text(encoding="utf-8", errors="replace")
                                            for p in (settings.reports_dir() / "gx").rglob("*.json"))
    assert BAD_ID not in everything and ID not in everything


def test_runs_accumulate_and_old_results_are_pruned():
    person, lab = _outcomes()
    data_docs.build_data_docs([person], run_name="run-a")
    data_docs.build_data_docs([lab], run_name="run-b")
    site = settings.reports_dir() / "data_docs"
    assert {p.parts[-3] for p in site.glob("validations/*/*/*/*.html")} == {"run-a", "run-b"}
    data_docs.build_data_docs([lab], run_name="run-c", keep_days=0)  # everything before now is dropped
    assert {p.parts[-3] for p in site.glob("validations/*/*/*/*.html")} == {"run-c"}


def test_data_docs_from_validated_batch_folders():
    """What the pipeline leaves beside a landed batch is enough to build the site (any process, any time)."""
    person, _ = _outcomes()
    batch = settings.landing_dir() / "src" / "patients" / "b-person"
    folder = batch / "validated" / "person"
    folder.mkdir(parents=True)
    errors = person.issues.filter(pa.compute.equal(person.issues.column("severity"), "error"))
    warnings = person.issues.filter(pa.compute.equal(person.issues.column("severity"), "warning"))
    pq.write_table(errors, folder / "quarantine.parquet")
    pq.write_table(warnings, folder / "findings.parquet")
    (batch / "validated" / "outcome.json").write_text(json.dumps({
        "batch_id": "b-person", "source_id": "src", "stream": "patients", "validated_at": "2026-03-10T12:00:00",
        "datasets": {"person": {"dataset": "person", "rows_in": person.rows_in, "rule_counts": person.rule_counts}}}))
    (batch / "manifest.json").write_text("{}")  # what makes a landed batch a batch (landing.list_batches)
    assert data_docs.batches_validated_since(dt.datetime(2026, 3, 10)) == [batch]
    assert data_docs.batches_validated_since(dt.datetime(2026, 3, 11)) == []
    data_docs.build_data_docs(data_docs.batches_validated_since(dt.datetime(2026, 3, 10)), run_name="from-files")
    page = next((settings.reports_dir() / "data_docs").glob("validations/person/from-files/*/src__b-person.html"))
    text = re.sub(r"\s+", " ", page.read_text(encoding="utf-8"))
    assert privacy.mask_id(BAD_ID) in text and "2026-03-10T12:00:00" in text


def test_a_batch_that_was_not_validated_is_named(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="not validated yet"):
        data_docs.build_data_docs([tmp_path / "b1"])
