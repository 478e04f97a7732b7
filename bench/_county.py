"""A simulated county running for a benchmark: generated (or reused from a work directory), its sources written,
its public-health platform served over HTTP, and the environment the pipeline resolves them from. Shared by
the benchmarks that run the real pipeline (bench_validation ``--county``, bench_extract)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def running_county(residents: int, days: int, workdir: Path | None = None, *, prefix: str = "bench-county-"):
    """Yields ``(root, county_dir)`` with the environment set for the pipeline; stops the server after."""
    from countyhealth.simulate.county import CountyConfig, generate
    from countyhealth.simulate.public_health import PublicHealthServer, ServerConfig
    from countyhealth.simulate.sources import write_sources

    root = Path(workdir or tempfile.mkdtemp(prefix=prefix))
    county = root / "county"
    if not (county / "county.json").exists():
        t = time.perf_counter()
        generate(county, CountyConfig(seed=42, residents=residents, days=days))
        print(f"county: {residents:,} residents, {days} days generated in {time.perf_counter() - t:.0f} s in {root}",
              flush=True)
        write_sources(county, root / "sources")
    server = PublicHealthServer(ServerConfig(db_path=county / "public_health" / "platform.sqlite")).start()
    key, secret = ServerConfig.default_credentials()
    env = {"COUNTYHEALTH_COUNTY_DIR": str(county), "COUNTYHEALTH_SOURCES_DIR": str(root / "sources"),
           "COUNTYHEALTH_DATA_DIR": str(root / "data"),
           "AIRFLOW_CONN_PUBLIC_HEALTH": f"http://{key}:{secret}@127.0.0.1:{server.port}"}
    for sid, info in json.loads((county / "county.json").read_text())["his"].items():
        env[f"AIRFLOW_CONN_{sid.upper()}"] = f"sqlite:///{county / info['url']}"
    os.environ.update(env)
    try:
        yield root, county
    finally:
        server.stop()
