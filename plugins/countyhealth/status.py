"""``countyhealth status [SOURCE]``: per member and stream, where the nightly job stands and what to do.

Like dlt's ``pipeline info`` / ``failed-jobs``: for each enabled stream of each configured source — the last
successful load, the watermark, the rows of the last night (written / re-read unchanged / quarantined), the
batches the circuit breaker holds, and the failures since the last success with their reason and the
command that fixes each. ``--json`` prints the same as one JSON document for monitoring.

Everything is read from the warehouse (``batch_audit``, ``watermark``) and the failure records; nothing is
recomputed. "Last night" is the batches loaded within :data:`NIGHT` of the warehouse's latest load, so a
member that did not load in the latest night shows no rows for it, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

import click

NIGHT = dt.timedelta(hours=12)


@dataclass
class StreamStatus:
    source_id: str
    stream: str
    facility_code: str
    description: str  # the member, e.g. 永泰县樟城镇卫生院 HIS
    last_success: str | None = None
    watermark: str | None = None
    last_night: dict = field(default_factory=lambda: {"batches": 0, "written": 0, "unchanged": 0, "quarantined": 0})
    held: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.failures:
            return "FAILED"
        if self.held:
            return "HELD"
        return "ok" if self.last_success else "never loaded"


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.isoformat(sep=" ", timespec="seconds") if isinstance(value, dt.datetime) else str(value)


def collect(source_id: str | None = None, *, wh=None) -> list[StreamStatus]:
    import sqlalchemy as sa

    from countyhealth import failures
    from countyhealth.connectors.config import get_source, load_sources
    from countyhealth.warehouse import Warehouse

    sources = {source_id: get_source(source_id)} if source_id else load_sources()
    wh = wh or Warehouse()
    with wh.engine.connect() as conn:
        audit = [dict(r._mapping) for r in conn.execute(sa.text(
            "SELECT batch_id, dataset, source_id, stream, status, rows_extracted, rows_loaded, rows_quarantined, "
            "rows_written, rows_unchanged, loaded_at, validated_at, message FROM batch_audit"))]
        marks = {(r.source_id, r.stream): r for r in conn.execute(sa.text(
            "SELECT source_id, stream, cursor_value, updated_at FROM watermark"))}
    loads = [a["loaded_at"] for a in audit if a["loaded_at"] is not None]
    night_start = max(loads) - NIGHT if loads else None
    failure_records = failures.read()
    out = []
    for sid, source in sources.items():
        for name, stream in source.streams.items():
            if not stream.enabled:
                continue
            st = StreamStatus(sid, name, source.facility_code or "", source.description or "")
            mine = [a for a in audit if a["source_id"] == sid and a["stream"] == name]
            ok = [a["loaded_at"] for a in mine if a["status"] in ("loaded", "released") and a["loaded_at"]]
            last = max(ok) if ok else None
            st.last_success = _iso(last)
            mark = marks.get((sid, name))
            st.watermark = mark.cursor_value if mark else None
            night = [a for a in mine if night_start is not None and a["loaded_at"] and a["loaded_at"] >= night_start]
            st.last_night = {"batches": len({a["batch_id"] for a in night}),
                             "written": sum(a["rows_written"] or 0 for a in night),
                             "unchanged": sum(a["rows_unchanged"] or 0 for a in night),
                             "quarantined": sum(a["rows_quarantined"] or 0 for a in night)}
            for batch_id in sorted({a["batch_id"] for a in mine if a["status"] == "held"}):
                reason = next(a["message"] for a in mine if a["batch_id"] == batch_id and a["status"] == "held")
                st.held.append({"batch_id": batch_id, "reason": reason or "",
                                "fix": f"fix the mapping in sources/{sid}.yaml, then `countyhealth batches revalidate "
                                       f"{batch_id} --load`; or `countyhealth batches release {batch_id} --reason "
                                       "\"...\" --load` to load it as it is"})
            for rec in failure_records:
                if rec.get("source_id") != sid or rec.get("stream") not in (name, None):
                    continue
                at = dt.datetime.fromisoformat(rec["at"])
                if last is not None and at <= last:
                    continue  # a later load succeeded: fixed
                st.failures.append({"at": rec["at"], "stage": rec.get("stage"), "reason": rec.get("reason", ""),
                                    "fix": f"`countyhealth sources check {sid}` names what is wrong; once fixed, "
                                           f"`countyhealth pipeline extract {sid} {name}` then `countyhealth "
                                           "pipeline load` (or the next night) catches up"})
            out.append(st)
    return out


@click.command("status")
@click.argument("source_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (for monitoring).")
def status_command(source_id: str | None, as_json: bool) -> None:
    """Per member and stream: last success, watermark, last night's rows, held batches, failures and fixes.

    Exits 1 when any stream has a failure or a held batch (so monitoring can alert on the exit status)."""
    rows = collect(source_id)
    if as_json:
        click.echo(json.dumps({"streams": [asdict(r) | {"state": r.state} for r in rows]}, ensure_ascii=False,
                              indent=2))
    else:
        click.echo(f"{'member/stream':<34} {'state':<12} {'last success':<20} {'written':>8} {'unchanged':>9} "
                   f"{'quarant.':>8}  watermark")
        for r in rows:
            n = r.last_night
            label = f"{r.source_id}/{r.stream}"
            click.echo(f"{label:<34} {r.state:<12} {r.last_success or '-':<20} {n['written']:>8,} "
                       f"{n['unchanged']:>9,} {n['quarantined']:>8,}  {r.watermark or '-'}")
            for h in r.held:
                click.echo(f"    HELD {h['batch_id']}: {h['reason'][:160]}\n      fix: {h['fix']}")
            for f in r.failures:
                click.echo(f"    FAILED {f['at']} ({f['stage']}): {f['reason'][:160]}\n      fix: {f['fix']}")
    if any(r.failures or r.held for r in rows):
        raise SystemExit(1)
