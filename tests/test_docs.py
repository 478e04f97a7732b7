"""Code shown in docs/ is the code the tests run (scripts/sync_docs.py keeps them equal)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_docs", ROOT / "scripts" / "sync_docs.py")
sync_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_docs)


def test_doc_snippets_match_the_tested_files():
    stale = [s for doc in sorted((ROOT / "docs").rglob("*.md")) for s in sync_docs.sync(doc, write=False)]
    assert stale == [], f"docs out of date with the code they show; run `python scripts/sync_docs.py`: {stale}"


def test_includes_exist_where_docs_promise_them():
    text = (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    for path in ("sources/public_health.yaml", "sources/contracts.yaml", "docs/examples/sources/lis_h350125003.yaml",
                 "plugins/countyhealth/connectors/hl7.py", "setup.cfg"):
        assert f"<!-- include: {path}" in text, path


def test_every_source_yaml_key_is_in_the_generated_reference():
    """docs/connectors.md's key reference is what the config types say now, and no key lacks a description."""
    doc = ROOT / "docs" / "connectors.md"
    assert sync_docs.sync_reference(doc, write=False) == [], "run `python scripts/sync_docs.py`"
    text = doc.read_text(encoding="utf-8")
    for key in ("auth.request_format", "error_handler.response_filters[].action", "rate_limit.max_consecutive_throttled",
                "paginator.has_more_field", "cursor.lookback.depth", "reconcile.days", "rejected", "paginator.params"):
        assert f"| `{key}` |" in text, key
    assert "docs/examples/sources/lis_regional.yaml" in text


def test_an_undocumented_key_fails_the_reference(monkeypatch):
    from pydantic import Field

    from countyhealth.connectors import typing as t

    class Careless(t.Model):
        documented: int = Field(1, description="fine")
        forgotten: int = 2

    import pytest

    with pytest.raises(sync_docs.UndocumentedKey, match="Careless.forgotten has no description"):
        sync_docs._rows(Careless)
