"""``countyhealth pipeline``: the stages without Airflow (the DAG calls the same functions)."""

from __future__ import annotations

import click

from countyhealth.connectors.config import load_sources
from countyhealth.pipeline import extract, load_pending, run
from countyhealth.progress import steps


@click.group("pipeline")
def pipeline_command() -> None:
    """Run pipeline stages without Airflow (the DAG calls the same functions)."""


@pipeline_command.command("run")
@click.option("--until", type=click.DateTime(), default=None, help="End of the extract window (default: now).")
@click.option("--no-downstream", is_flag=True,
              help="Stop after loading (skip identity, shared results and indicators).")
def run_command(until, no_downstream) -> None:
    """Extract, validate and load every source; then identity, shared results and indicators.

    Exits 1 when any stream failed or any batch is held — after doing everything it could for the others."""
    from countyhealth import run_lock

    sources = load_sources()
    streams = sum(1 for src in sources.values() for st in src.streams.values() if st.enabled)
    with run_lock.one_run():  # one run at a time: a second says who holds it since when and exits 75
        with steps(streams + (5 if not no_downstream else 2), "night") as bar:
            s = run(until=until, downstream=not no_downstream, sources=sources, progress=bar.advance)
    written = sum(d.get("written", 0) for b in s.loaded for d in b.datasets.values())
    unchanged = sum(d.get("unchanged", 0) for b in s.loaded for d in b.datasets.values())
    click.echo(f"extracted {sum(s.extracted.values()):,} rows from {len(s.extracted)} stream(s); "
               f"loaded {len(s.loaded)} batch(es) ({written:,} rows written, {unchanged:,} re-read unchanged); "
               f"held {len(s.held)}; failed {len(s.failed)}")
    for key, reason in s.failed.items():
        click.echo(f"  FAILED {key}: {reason}")
    for h in s.held:
        click.echo(f"  HELD {h.source_id}/{h.stream} batch {h.batch_id} (see `countyhealth batches list --held`)")
    for w in s.warnings:
        click.echo(f"  WARNING {w}")
    if not s.ok:
        raise SystemExit(1)


@pipeline_command.command("extract")
@click.argument("source_id")
@click.argument("stream")
@click.option("--until", type=click.DateTime(), default=None)
def extract_command(source_id, stream, until) -> None:
    """Land one stream's new rows."""
    m = extract(source_id, stream, until=until)
    click.echo(f"landed {m.rows:,} rows: batch {m.batch_id}")


@pipeline_command.command("load")
def load_command() -> None:
    """Load every validated batch that is not loaded yet."""
    loads, failures = load_pending()
    for s in loads:
        click.echo(f"{s.source_id}/{s.stream} {s.batch_id}: {s.status}")
    for key, reason in failures.items():
        click.echo(f"FAILED {key}: {reason}")
    if failures:
        raise SystemExit(1)
