"""``countyhealth results``: a resident's shared results, FHIR export, the read API, tokens, coverage, EQA.

``countyhealth results P0000000042 [--as-of 2026-03-05]`` prints the person's results, most recent first,
with the HR mark or the reason they can't be recognised; any other first word is a sub-command.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import sqlalchemy as sa


class PersonOrCommand(click.Group):
    """A group whose first argument is a sub-command name or, failing that, a person id."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


def _wh(url=None):
    from countyhealth.warehouse import Warehouse

    return Warehouse(url)


@click.group("results", cls=PersonOrCommand)
def results() -> None:
    """Shared test results (检查检验结果互认). `countyhealth results PERSON_ID [--as-of DATE]` shows a person."""


@results.command("show", hidden=True)
@click.argument("person_id")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Eligibility as of this day "
              "(default today).")
@click.option("--url", default=None)
def show(person_id, as_of, url) -> None:
    from countyhealth import identity, privacy
    from countyhealth import results as shared

    wh = _wh(url)
    try:
        active = identity.resolve(wh, person_id)
    except KeyError:
        raise click.ClickException(f"no person {person_id} (person ids look like P0000000042)") from None
    day = as_of.date() if as_of else dt.date.today()
    with wh.engine.connect() as conn:
        golden = conn.execute(sa.text("SELECT name, sex_code, birth_date, id_number FROM golden_person WHERE "
                                      "person_id = :p"), {"p": active}).mappings().first()
        labs = shared.eligible(conn, active, day, kind="lab")
        exams = shared.eligible(conn, active, day, kind="exam")
    who = f"{golden['name']} ({'男' if golden['sex_code'] == '1' else '女' if golden['sex_code'] == '2' else '?'}, " \
          f"{golden['birth_date']}, ID {privacy.mask_id(privacy.decrypt(golden['id_number']))})" if golden else ""
    click.echo(f"{active} {who}" + (f" — {person_id} was merged into it" if active != person_id else ""))
    facilities = {r["facility_name"] or r["facility_code"] for r in labs + exams}
    recognised = sum(1 for r in labs + exams if r["mark"])
    click.echo(f"as of {day}: {len(labs)} lab results and {len(exams)} exam reports from {len(facilities)} "
               f"member(s); {recognised} recognisable (HR)\n")
    if labs:
        click.echo(f"{'reported':<17} {'member':<18} {'item':<14} {'result':>16} {'unit':<9} flag mark  reason")
        for r in labs:
            value = r["value_canonical"] if r["value_canonical"] is not None else r["value_numeric"]
            shown = (f"{r['value_operator'] or ''}{value:.4g}" if value is not None else (r["value_text"] or ""))
            click.echo(f"{r['report_at']:%Y-%m-%d %H:%M} {(r['facility_name'] or r['facility_code'] or '')[:16]:<18} "
                       f"{(r['item_name'] or r['item_name_local'] or '')[:12]:<14} {shown:>16} "
                       f"{(r['unit_canonical'] or r['unit'] or '')[:9]:<9} {r['abnormal_flag'] or '':<4} "
                       f"{r['mark'] or '—':<5} {r['reason'] or ''}")
    if exams:
        click.echo(f"\n{'reported':<17} {'member':<18} {'exam':<20} mark  impression / reason")
        for r in exams:
            click.echo(f"{r['report_at']:%Y-%m-%d %H:%M} {(r['facility_name'] or '')[:16]:<18} "
                       f"{(r['procedure_name'] or '')[:18]:<20} {r['mark'] or '—':<5} "
                       f"{r['impression'] or ''}{'  [' + r['reason'] + ']' if r['reason'] else ''}")


@results.command("refresh")
@click.option("--url", default=None)
def refresh(url) -> None:
    """Rebuild the shared tables (and the API's snapshot on DuckDB)."""
    from countyhealth import results as shared

    s = shared.refresh(_wh(url))
    click.echo(f"{s.lab_results:,} lab results, {s.exam_reports:,} exam reports ({s.lab_unlinked + s.exam_unlinked:,} "
               f"waiting for identity); {s.seconds:.1f}s" + (f"; snapshot {s.snapshot}" if s.snapshot else ""))


@results.command("load-eqa")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None)
def load_eqa(csv_file, url) -> None:
    """Load EQA (室间质评) results: facility_code, item_code, period_start, period_end, passed."""
    from countyhealth.results import config

    wh = _wh(url)
    wh.migrate()
    n = config.load_eqa(wh, Path(csv_file))
    click.echo(f"loaded {n:,} EQA result(s); they count from the next refresh")


@results.command("coverage")
@click.option("--url", default=None)
@click.option("--limit", default=50, show_default=True)
def coverage(url, limit) -> None:
    """Local item codes with no county mapping, per member, most frequent first — the IT team's to-do list."""
    from countyhealth.results.coverage import unmapped

    rows = unmapped(_wh(url), limit=limit)
    if not rows:
        click.echo("every local lab and exam code seen is mapped")
        return
    click.echo(f"{'results':>8}  {'member':<14} {'code system':<14} {'kind':<5} {'local code':<12} local name")
    for r in rows:
        click.echo(f"{r['results']:>8,}  {r['facility_code'] or '':<14} {r['code_system'] or '?':<14} {r['kind']:<5} "
                   f"{r['local_code']:<12} {r['local_name'] or ''}")


@results.command("export-fhir")
@click.option("--person", "person_id", default=None)
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Everyone with a result on this day.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--url", default=None)
def export_fhir(person_id, day, out, url) -> None:
    """Write FHIR R4 Bundles (validated with fhir.resources), per person or per day."""
    from countyhealth.results import fhir

    if bool(person_id) == bool(day):
        raise click.UsageError("give exactly one of --person or --day")
    wh = _wh(url)
    if person_id:
        path = fhir.export_person(wh, person_id, Path(out))
        click.echo(f"wrote {path}")
    else:
        n = fhir.export_day(wh, day.date(), Path(out))
        click.echo(f"wrote {n} bundle(s) into {out}")


@results.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8800, show_default=True)
def serve(host, port) -> None:
    """Run the read-only FHIR API."""
    from countyhealth.results import api

    click.echo(f"shared results API on http://{host}:{port}/fhir (tokens: countyhealth results token create)", err=True)
    api.serve(host, port)


@results.group("token")
def token() -> None:
    """API tokens: one per member facility system, stored hashed."""


@token.command("create")
@click.option("--facility", "facility_code", required=True)
@click.option("--name", default=None, help="Label for the audit trail (default: the facility code).")
@click.option("--identifiers", is_flag=True, help="Let this token see resident ID numbers and phones unmasked.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=90, show_default=True,
              help="How long the token is valid; rotate it before (`token rotate NAME`).")
def token_create(facility_code, name, identifiers, days) -> None:
    from countyhealth.results import api

    if not api.registered_facility(facility_code):
        raise click.ClickException(f"facility {facility_code!r} is not in the facility registry: check the code "
                                   "(`countyhealth results coverage` lists members) or load the registry first")
    value = api.create_token(facility_code, name or facility_code, can_see_identifiers=identifiers, days=days)
    click.echo(value)
    click.echo("shown once: store it in the facility system's secret store", err=True)


@token.command("rotate")
@click.argument("name")
@click.option("--grace-hours", type=float, default=24, show_default=True,
              help="How long the old token keeps working while the facility system switches.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=90, show_default=True)
def token_rotate(name, grace_hours, days) -> None:
    """A new token for NAME's facility; the old one stops after the grace period."""
    from countyhealth.results import api

    try:
        value = api.rotate_token(name, grace_hours=grace_hours, days=days)
    except KeyError:
        raise click.ClickException(f"no live token named {name!r}: create one with `token create`") from None
    click.echo(value)
    click.echo(f"shown once; the old token stops working in {grace_hours:g} h", err=True)


@token.command("revoke")
@click.argument("name")
def token_revoke(name) -> None:
    from countyhealth.results import api

    n = api.revoke_token(name)
    click.echo(f"revoked {n} token(s) named {name}")
