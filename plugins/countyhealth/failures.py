"""Failure records for the run report: which member, which stage, why — one JSON line each.

The pipeline, the Airflow callbacks and the run report share them; reasons are scrubbed of ID numbers and phones
before they are written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from countyhealth import privacy, settings


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def record(*, stage: str, reason: str, run_id: str | None = None, dag_id: str | None = None,
           task_id: str | None = None, source_id: str | None = None, stream: str | None = None,
           facility_code: str | None = None) -> Path:
    """Append a plain failure summary (which member, which stage, why) for the run report."""
    folder = settings.reports_dir() / "failures"
    privacy.private_data_dir()
    privacy.private_dir(folder)
    record = {"run_id": run_id, "dag_id": dag_id, "task_id": task_id, "source_id": source_id, "stream": stream,
              "stage": stage, "facility_code": facility_code, "at": _now().isoformat(timespec="seconds"),
              "reason": privacy.scrub(reason)[:2000]}
    path = folder / f"{_now():%Y%m%d}.jsonl"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def read(*, run_id: str | None = None, since: dt.datetime | None = None) -> list[dict]:
    """Failure records (optionally of one run, or since a time), oldest first."""
    folder = settings.reports_dir() / "failures"
    out = []
    for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if run_id is not None and rec.get("run_id") != run_id:
                continue
            if since is not None and dt.datetime.fromisoformat(rec["at"]) < since:
                continue
            out.append(rec)
    return out
