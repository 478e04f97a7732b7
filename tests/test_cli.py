"""The installed console command."""

import shutil
import subprocess
import sys
from pathlib import Path

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
