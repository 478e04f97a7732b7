"""The installed console command."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from countyhealth.cli import LAZY_COMMANDS, main


def _countyhealth() -> list[str]:
    exe = Path(sys.executable).parent / "countyhealth"
    return [str(exe)] if exe.exists() else [shutil.which("countyhealth") or "countyhealth"]


def test_help_lists_commands():
    out = subprocess.run([*_countyhealth(), "--help"], capture_output=True, text=True, check=True).stdout
    listed = out.split("Commands:", 1)[1]
    for command in LAZY_COMMANDS:
        assert f"  {command} " in listed, f"{command} missing from --help"


def test_warehouse_migrate_and_status(duckdb_url):
    runner = CliRunner()
    result = runner.invoke(main, ["warehouse", "migrate", "--url", duckdb_url])
    assert result.exit_code == 0, result.output
    assert "applied" in result.output
    status = runner.invoke(main, ["warehouse", "status", "--url", duckdb_url])
    assert status.exit_code == 0 and "lab_result" in status.output and "pending: 0" in status.output


# --- a user's mistake: one line naming the fix, exit status 2, no traceback (``-v`` shows it) ---------------

def _one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def migrated(duckdb_url, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", duckdb_url)
    assert CliRunner().invoke(main, ["warehouse", "migrate"]).exit_code == 0
    return duckdb_url


def test_unknown_source_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(tmp_path))
    _one_line_error(CliRunner().invoke(main, ["pipeline", "extract", "nosuch", "patients"]),
                    "nosuch", "countyhealth sources list")


@pytest.mark.parametrize("args", [["batches", "release", "bogus", "--reason", "x"], ["batches", "revalidate", "bogus"]])
def test_unknown_batch_names_the_fix(args):
    _one_line_error(CliRunner().invoke(main, args), "bogus", "countyhealth batches list")


@pytest.mark.parametrize("args", [["results", "P9999999999"], ["identity", "show", "nosuch"]])
def test_unknown_person_names_the_fix(migrated, args):
    _one_line_error(CliRunner().invoke(main, args), args[-1], "P0000000042")


def test_verbose_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["-v", "pipeline", "extract", "nosuch", "patients"])
    assert result.exit_code == 2 and "Traceback" in result.output and "NotFound" in result.output


def test_unreachable_postgresql(monkeypatch):
    # 18499: in this suite's port range and never listened on
    url = "postgresql+psycopg://etl:do-not-print@127.0.0.1:18499/warehouse"
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", url)
    line = _one_line_error(CliRunner().invoke(main, ["warehouse", "status"]), "18499", "start PostgreSQL")
    assert "do-not-print" not in line


def test_warehouse_locked_by_a_running_night(migrated):
    path = migrated.split(":///", 1)[1]
    # another process holds the DuckDB file read-write, as a nightly load does
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({path!r}); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["warehouse", "status"], ["results", "P0000000001"]):
            _one_line_error(CliRunner().invoke(main, args), "a nightly run is writing", "results snapshot")
    finally:
        holder.kill()
        holder.wait()


def test_great_expectations_registration_noise_is_off_unless_verbose(tmp_path, monkeypatch):
    import logging

    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(tmp_path))
    gx = logging.getLogger("great_expectations")
    monkeypatch.setattr(gx, "level", logging.NOTSET)
    CliRunner().invoke(main, ["-v", "pipeline", "extract", "nosuch", "patients"])
    assert gx.level == logging.NOTSET  # -v: everything, GX included
    CliRunner().invoke(main, ["pipeline", "extract", "nosuch", "patients"])
    assert gx.level == logging.WARNING
