"""Offline and quiet: the Data Docs index and the run report render in headless Chromium with networking disabled
(a network namespace of its own: no interface but loopback), and no page loads anything from the network; GX's
analytics are off."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from countyhealth import model, settings
from countyhealth.validation import data_docs, report
from countyhealth.warehouse import Warehouse

_LOADS_REMOTE = re.compile(r"<(script|link|img)[^>]*\s(src|href)=[\"']https?://", re.I)


def _chromium() -> list[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Debian's chromium is not installed (make test installs it)", pytrace=False)
        pytest.skip("chromium not installed here (run `make test` to install it)")
    isolate = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else []
    # without a namespace of its own (not root), a proxy that does not exist and a resolver that finds nothing
    return [*isolate, exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom"]


def _rendered(cmd: list[str], page) -> str:
    out = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_data_docs_and_run_report_render_with_no_network(duckdb_url, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "validation"))
    from test_data_docs import _outcomes  # the validation tests' two outcomes

    cmd = _chromium()
    index = data_docs.build_data_docs(list(_outcomes()), run_name="offline-1")
    site = index.parent
    for page in site.rglob("*.html"):
        assert not _LOADS_REMOTE.search(page.read_text(encoding="utf-8")), page.relative_to(site)
    for css in site.rglob("*.css"):
        assert "http" not in css.read_text(encoding="utf-8", errors="replace"), css.relative_to(site)
    gx_config = yaml.safe_load((settings.reports_dir() / "gx" / "great_expectations.yml").read_text())
    assert gx_config.get("analytics_enabled") is False
    dom = _rendered(cmd, index)
    assert all(d in dom for d in model.DATASET_NAMES) and "offline-1" in dom
    wh = Warehouse(duckdb_url)
    wh.migrate()
    run_report = report.write_report(wh, tmp_path / "run-report.html")
    assert not _LOADS_REMOTE.search(run_report.read_text(encoding="utf-8"))
    assert "No batch is held." in _rendered(cmd, run_report)
