"""How long Airflow takes to parse the project's DAG files (the DagBag of dags/), in a fresh process.

    .venv/bin/python bench/bench_dag_parse.py [--repeat 5]

Airflow's own import is excluded (it is not ours); the figure is the median of the runs. The DAG files must
stay thin: a parse well under Airflow's dagbag_import_timeout (30 s) and, on a quiet 2-core machine, about a
second or two. Speed lives here, not in tests: a timed assertion fails on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = f"""
import json, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "errors": len(bag.import_errors), "dags": len(bag.dag_ids)}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env,
                             cwd=ROOT).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    secs = [r["seconds"] for r in runs]
    print(f"DAG parse: median {statistics.median(secs):.2f} s (min {min(secs):.2f}, max {max(secs):.2f}) over "
          f"{len(secs)} runs; {runs[0]['dags']} DAGs, {runs[0]['errors']} import errors")


if __name__ == "__main__":
    main()
