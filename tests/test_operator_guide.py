"""Every command in docs/operator-guide.md, run on a simulated county with a held batch and a member down."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from countyhealth.cli import main
from countyhealth.simulate.county import CountyConfig, generate
from county_env import make_env

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operator-guide.md"
# commands whose exit status 1 means "something needs attention" (the guide says so), not an error
ATTENTION = {"pipeline run", "status", "sources check"}


def guide_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("countyhealth ")]


@pytest.mark.slow
def test_every_command_in_the_operator_guide_runs(tmp_path, monkeypatch):
    commands = guide_commands()
    assert len(commands) >= 10
    county = tmp_path / "template" / "county"
    generate(county, CountyConfig(seed=5, residents=1500, days=3, county_hospitals=1, townships=2,
                                  villages_per_township=2))
    env = make_env(tmp_path / "run", county, monkeypatch)
    try:
        db = sqlite3.connect(env.county / "his" / "W350125102.sqlite")
        db.execute("UPDATE jy_jg SET bgsj = 'N/A' WHERE rowid % 3 != 0")
        db.commit()
        db.close()
        with (env.sources / "his_w350125102.yaml").open("a", encoding="utf-8") as fh:
            fh.write("validation: {min_rows: 10}\n")
        monkeypatch.setenv("AIRFLOW_CONN_HIS_H350125001", f"sqlite:///{tmp_path / 'gone' / 'his.sqlite'}")
        runner = CliRunner()
        held_id = None
        for line in commands:
            args = shlex.split(line)[1:]
            if "BATCH_ID" in args:
                assert held_id, "the guide releases a batch before listing the held ones"
                args = [held_id if a == "BATCH_ID" else a for a in args]
            result = runner.invoke(main, args)
            allowed = {0, 1} if any(line.startswith(f"countyhealth {c}") for c in ATTENTION) else {0}
            assert result.exit_code in allowed, (line, result.exit_code, result.output[-2000:])
            assert "Traceback" not in result.output, line
            if args[:2] == ["batches", "list"]:
                found = re.search(r"^(\S+)\s.*HELD", result.output, re.M)
                assert found, result.output
                held_id = found.group(1)
        # after the release the held batch is loaded: status no longer shows it held
        after = runner.invoke(main, ["status", "his_w350125102"])
        assert "HELD" not in after.output, after.output
    finally:
        env.stop()
