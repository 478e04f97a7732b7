"""``countyhealth demo``: the whole job, for real, on the embedded default warehouse.

It grows with the pipeline: each stage that exists runs; the summary says where to look.
"""

from __future__ import annotations

import click

from countyhealth import model, settings


@click.command()
@click.option("--residents", default=3000, show_default=True, help="Size of the simulated county.")
@click.option("--days", default=3, show_default=True, help="Days of activity to simulate and load.")
@click.option("--seed", default=42, show_default=True)
def demo(residents: int, days: int, seed: int) -> None:
    """Simulate a county, create the warehouse and run the pipeline on it; print where to look."""
    from countyhealth.warehouse import Warehouse

    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    wh = Warehouse()
    applied = wh.migrate()
    click.echo(f"warehouse: {settings.warehouse_url()} ({len(applied)} migration(s) applied now)")
    click.echo("rows per dataset:")
    for dataset in model.DATASET_NAMES:
        click.echo(f"  {dataset:<18} {wh.count(dataset):>10,}")
    click.echo(f"look in: {data}")
