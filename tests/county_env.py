"""A simulated county wired up for pipeline tests: its own data dir, source YAMLs, Airflow connections
(AIRFLOW_CONN_* variables) and its public-health platform running as a real HTTP server."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from countyhealth.simulate.county import County, load_config
from countyhealth.simulate.public_health import PublicHealthServer, ServerConfig
from countyhealth.simulate.sources import write_sources


@dataclass
class CountyEnv:
    root: Path
    county: Path
    sources: Path
    data: Path
    server: PublicHealthServer
    env: dict = field(default_factory=dict)
    lab: object = None  # the regional lab's API server (simulate/regional_lab.py) when the county has one

    def truth_records(self) -> list[dict]:
        with (self.county / "truth" / "records.csv").open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def truth_defects(self) -> list[dict]:
        with (self.county / "truth" / "defects.csv").open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def expected_counts(self) -> dict:
        return json.loads((self.county / "truth" / "expected_counts.json").read_text())

    def advance(self, days: int = 1) -> None:
        County(self.county, load_config(self.county)).advance(days)

    def stop(self) -> None:
        self.server.stop()
        if self.lab is not None:
            self.lab.stop()


def make_env(root: Path, template: Path, monkeypatch) -> CountyEnv:
    county = root / "county"
    shutil.copytree(template, county)
    sources = root / "sources"
    write_sources(county, sources)
    data = root / "data"
    manifest = json.loads((county / "county.json").read_text())
    server = PublicHealthServer(ServerConfig(db_path=county / "public_health" / "platform.sqlite")).start()
    key, secret = ServerConfig.default_credentials()
    env = {"COUNTYHEALTH_COUNTY_DIR": str(county), "COUNTYHEALTH_SOURCES_DIR": str(sources),
           "COUNTYHEALTH_DATA_DIR": str(data),
           "AIRFLOW_CONN_PUBLIC_HEALTH": f"http://{key}:{secret}@127.0.0.1:{server.port}"}
    for sid, info in manifest["his"].items():
        env[f"AIRFLOW_CONN_{sid.upper()}"] = f"sqlite:///{county / info['url']}"
    lab = None
    if manifest.get("regional_lab"):
        from countyhealth.simulate.regional_lab import LabApiConfig, LabApiServer

        lab = LabApiServer(LabApiConfig(db_path=county / manifest["regional_lab"])).start()
        client_id, client_secret = LabApiConfig.default_credentials()
        env["AIRFLOW_CONN_LIS_REGIONAL"] = f"http://{client_id}:{client_secret}@127.0.0.1:{lab.port}"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return CountyEnv(root, county, sources, data, server, env, lab)


def defects_by_record(env: CountyEnv) -> dict[tuple, set]:
    out: dict[tuple, set] = defaultdict(set)
    for d in env.truth_defects():
        out[(d["source_id"], d["source_record_id"])].add(d["defect"])
    return out


def counter(rows, *keys) -> Counter:
    return Counter(tuple(r[k] for k in keys) for r in rows)
