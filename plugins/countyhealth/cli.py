"""The ``countyhealth`` command. Built on click (Airflow already brings it).

Sub-groups live beside the stage they drive and are imported only when used, so ``countyhealth --help``
stays fast and never pays for Great Expectations or Splink imports.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

# command name -> ("module:attribute" of a click command or group, one-line help shown by --help)
LAZY_COMMANDS = {
    "simulate": ("countyhealth.simulate.cli:simulate", "The simulated county and its running source systems."),
    "sources": ("countyhealth.connectors.commands:sources", "Check, list and scaffold source YAMLs."),
    "pipeline": ("countyhealth.pipeline_commands:pipeline_command", "Run pipeline stages without Airflow."),
    "batches": ("countyhealth.validation.commands:batches", "Landed batches: list, release or re-validate held ones."),
    "report": ("countyhealth.validation.report:report_command", "Write the self-contained HTML run report."),
    "identity": ("countyhealth.identity.commands:identity", "EMPI: link persons, review queue, retrain."),
    "results": ("countyhealth.results.commands:results", "Shared test results: show, export FHIR, serve the API."),
    "warehouse": ("countyhealth.cli:warehouse", "Create and inspect the warehouse."),
    "demo": ("countyhealth.demo:demo", "Simulate a county and run the whole pipeline on it."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use; ``--help`` imports none of them."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module_name, attr = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(name, self.lazy[name][1]) for name in self.list_commands(ctx) if name in self.lazy]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="countyhealth")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """countyhealth — nightly data integration for a county medical community (县域医共体)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
def warehouse() -> None:
    """Create and inspect the warehouse (COUNTYHEALTH_WAREHOUSE_URL, default the embedded DuckDB file)."""


@warehouse.command("migrate")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def warehouse_migrate(url: str | None) -> None:
    """Apply pending migrations from sql/<dialect>/."""
    from countyhealth.warehouse import Warehouse

    wh = Warehouse(url)
    applied = wh.migrate()
    click.echo(f"{wh.dialect}: applied {len(applied)} migration(s){': ' + ', '.join(f'{v:04d}' for v in applied) if applied else ''}")


@warehouse.command("status")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def warehouse_status(url: str | None) -> None:
    """Show the schema version and row counts per dataset."""
    from countyhealth import model
    from countyhealth.warehouse import Warehouse, migrations

    wh = Warehouse(url)
    applied = wh.applied_versions()
    pending = [m for m in migrations(wh.dialect) if m.version not in applied]
    click.echo(f"engine: {wh.dialect}; migrations applied: {len(applied)}, pending: {len(pending)}")
    if applied:
        for dataset in model.DATASET_NAMES:
            click.echo(f"  {dataset:<18} {wh.count(dataset):>10,}")


if __name__ == "__main__":  # pragma: no cover
    main()
