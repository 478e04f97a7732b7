"""``countyhealth batches``: what landed, what loaded, what the circuit breaker holds — and releasing it.

A held batch stays in landing with its validation outcome; nothing of it loads and its stream's watermark
stays put. After the source or the YAML is fixed:

- ``batches revalidate BATCH_ID`` maps and checks it again with the current configuration (a fixed value
  map or date format repairs the rows); if it now passes, the next load (or ``--load``) takes it;
- ``batches release BATCH_ID --reason "..."`` loads it as it is: failing rows still go to quarantine, the
  rest loads. The release (who, when, why) is recorded in its outcome and the audit message.

Or the vendor repairs the rows at the source: the next night reads the held batch's window again (its watermark
did not move), and once that batch loads the held one is *superseded* — recorded in its audit, no longer held,
and refused by ``release`` (it would put older values back over the repaired ones).
"""

from __future__ import annotations

import datetime as dt
import getpass

import click


def _batch_rows(held_only: bool, source_id: str | None):
    import sqlalchemy as sa

    from countyhealth import landing, pipeline
    from countyhealth.warehouse import Warehouse

    wh = Warehouse()
    audit: dict[str, str] = {}
    try:
        with wh.engine.connect() as conn:
            for batch_id, status in conn.execute(sa.text("SELECT batch_id, status FROM batch_audit")):
                audit[batch_id] = status if audit.get(batch_id) in (None, status) else "mixed"
    except sa.exc.SQLAlchemyError:
        pass  # no warehouse yet: everything is unloaded
    for path in landing.list_batches(source_id):
        m = landing.read_manifest(path)
        outcome = pipeline.BatchOutcome.read(path)
        if outcome is None:
            state = "landed"
        elif outcome.held:
            state = "superseded" if audit.get(m.batch_id) == "superseded" else "held"
        else:
            state = audit.get(m.batch_id, "validated")
        if held_only and state != "held":
            continue
        yield m, outcome, state


def _superseded_by(batch_id: str) -> str | None:
    """The batch that superseded ``batch_id`` (its audit's ``superseded_by``), or None when it is not superseded."""
    import sqlalchemy as sa

    from countyhealth.warehouse import Warehouse

    try:
        with Warehouse().engine.connect() as conn:
            return conn.execute(sa.text("SELECT max(superseded_by) FROM batch_audit WHERE batch_id = :b AND status = "
                                        "'superseded'"), {"b": batch_id}).scalar()
    except sa.exc.SQLAlchemyError:
        return None


@click.group("batches")
def batches() -> None:
    """Landed batches: list them; release or re-validate held ones."""


@batches.command("list")
@click.option("--held", "held_only", is_flag=True, help="Only batches the circuit breaker holds.")
@click.option("--source", "source_id", default=None)
def list_batches(held_only: bool, source_id: str | None) -> None:
    """Batches under landing/, oldest first, with rows and state (landed / validated / held / loaded)."""
    n = 0
    for m, outcome, state in _batch_rows(held_only, source_id):
        n += 1
        detail = ""
        if outcome is not None:
            detail = "; ".join(f"{ds}: {r.rows_quarantined}/{r.rows_in} failed" + (" HELD" if r.held else "")
                               for ds, r in outcome.datasets.items())
        click.echo(f"{m.batch_id}  {m.source_id}/{m.stream:<14} {m.rows:>9,} rows  {state:<9} {detail}")
    if n == 0:
        click.echo("no held batches" if held_only else "no batches")


@batches.command("revalidate")
@click.argument("batch_id")
@click.option("--load", "load_now", is_flag=True, help="Load it right away if it passes.")
def revalidate(batch_id: str, load_now: bool) -> None:
    """Validate a landed batch again with the current source configuration."""
    from countyhealth import landing, pipeline

    path = landing.find_batch(batch_id)
    outcome = pipeline.validate(path)
    for ds, r in outcome.datasets.items():
        click.echo(f"{ds}: {r.rows_quarantined:,} of {r.rows_in:,} rows fail ({100 * r.failing_share:.1f}%, threshold "
                   f"{100 * r.threshold:.0f}%)" + (" — still HELD" if r.held else ""))
    if load_now and not outcome.held:
        s = pipeline.load_batch(path)
        click.echo(f"loaded: {s.status}")


@batches.command("release")
@click.argument("batch_id")
@click.option("--reason", required=True, help="Why it is safe to load (recorded).")
@click.option("--load", "load_now", is_flag=True, help="Load it right away.")
def release(batch_id: str, reason: str, load_now: bool) -> None:
    """Load a held batch anyway: failing rows go to quarantine, the rest loads."""
    from countyhealth import landing, pipeline

    path = landing.find_batch(batch_id)
    outcome = pipeline.BatchOutcome.read(path)
    if outcome is None:
        raise click.ClickException(f"batch {batch_id} has not been validated yet")
    if not any(r.held for r in outcome.datasets.values()):
        raise click.ClickException(f"batch {batch_id} is not held")
    newer = _superseded_by(batch_id)
    if newer:
        raise click.ClickException(f"batch {batch_id} is superseded: batch {newer} read its rows again and loaded — "
                                   "releasing it would put older values back; nothing to do")
    outcome.released = {"by": getpass.getuser(), "at": dt.datetime.now().isoformat(timespec="seconds"),
                        "reason": reason}
    outcome.write(path)
    click.echo(f"released {batch_id}; it loads with the next load" + (" (loading now)" if load_now else ""))
    if load_now:
        s = pipeline.load_batch(path)
        click.echo(f"loaded: {s.status}")
