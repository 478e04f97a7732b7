"""The ``countyhealth`` command. Built on click (Airflow already brings it).

Sub-groups live beside the stage they drive and are imported only when used, so ``countyhealth --help``
stays fast and never pays for Great Expectations or Splink imports.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback

import click

from countyhealth.errors import UserError

LOCKED_BY_NIGHT = ("the warehouse is locked: a nightly run is writing; try again after it, or read the results "
                   "snapshot (`countyhealth results serve` reads it without the lock)")

# command name -> ("module:attribute" of a click command or group, one-line help shown by --help)
LAZY_COMMANDS = {
    "simulate": ("countyhealth.simulate.cli:simulate", "The simulated county and its running source systems."),
    "sources": ("countyhealth.connectors.commands:sources", "Check, list and scaffold source YAMLs."),
    "pipeline": ("countyhealth.pipeline_commands:pipeline_command", "Run pipeline stages without Airflow."),
    "batches": ("countyhealth.validation.commands:batches", "Landed batches: list, release or re-validate held ones."),
    "report": ("countyhealth.validation.report:report_command", "Write the self-contained HTML run report."),
    "identity": ("countyhealth.identity.commands:identity", "EMPI: link persons, review queue, retrain."),
    "results": ("countyhealth.results.commands:results", "Shared test results: show, export FHIR, serve the API."),
    "indicators": ("countyhealth.indicators.commands:indicators_group",
                   "Monitoring indicators (基层诊疗率, signing, chronic care, 互认): list, show, export."),
    "warehouse": ("countyhealth.cli:warehouse", "Create and inspect the warehouse."),
    "status": ("countyhealth.status:status_command", "Per member and stream: last success, rows, held, failures."),
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


def user_error(exc: BaseException) -> str | None:
    """The one-line message for an exception that is a user's mistake or a service that is not there;
    None for anything else (a bug: its traceback is printed as usual)."""
    if isinstance(exc, UserError):
        return str(exc)
    from countyhealth.landing import LandingError
    from countyhealth.warehouse import _is_lock_error

    if isinstance(exc, LandingError):
        return str(exc)
    if _is_lock_error(exc) or "stayed locked by another process" in str(exc):
        return LOCKED_BY_NIGHT
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.OperationalError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        if "connection" in first.lower() or "could not translate host" in first.lower():
            # psycopg names host and port, never the password
            return (f"cannot reach the warehouse ({first}): start PostgreSQL, or point "
                    "COUNTYHEALTH_WAREHOUSE_URL (or --url) at a running server")
    return None


class CountyhealthGroup(LazyGroup):
    """The top-level group: a user's mistake anywhere below becomes one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.params.get("verbose"):
                traceback.print_exc()
            if exc.exit_code == 1:  # click's default; our user errors exit 2 like click's usage errors
                exc.exit_code = 2
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below: user errors get one line, bugs a traceback
            message = user_error(exc)
            if message is None:
                raise
            if ctx.params.get("verbose"):
                traceback.print_exc()
            error = click.ClickException(message)
            error.exit_code = 2
            raise error from None


@click.group(cls=CountyhealthGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="countyhealth")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level; show the traceback behind an error.")
def main(verbose: bool) -> None:
    """countyhealth — nightly data integration for a county medical community (县域医共体)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        from countyhealth.orchestration import quiet_great_expectations

        quiet_great_expectations()


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
