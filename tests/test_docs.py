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
