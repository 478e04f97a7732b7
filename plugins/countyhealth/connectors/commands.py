"""``countyhealth sources``: list, check and scaffold source YAMLs."""

from __future__ import annotations

import sys

import click

from countyhealth import model, settings


@click.group("sources")
def sources() -> None:
    """Source systems: one YAML per source in sources/ (COUNTYHEALTH_SOURCES_DIR)."""


@sources.command("list")
def list_sources() -> None:
    """Each source: kind, member, streams and the datasets they map to."""
    from countyhealth.connectors.config import load_sources

    for sid, src in load_sources(include_disabled=True).items():
        state = "" if src.enabled else "  (disabled)"
        click.echo(f"{sid:<18} {src.kind:<5} {src.facility_code or '-':<12}{state}")
        for name, stream in src.streams.items():
            click.echo(f"    {name:<16} → {', '.join(stream.datasets)}")


@sources.command("fields")
@click.argument("dataset", type=click.Choice(model.DATASET_NAMES))
def fields(dataset: str) -> None:
    """The canonical fields of a dataset (what a stream maps onto); * = required."""
    for f in model.fields(dataset):
        if f.name in ("source_id", "batch_id"):
            continue
        click.echo(f"{'*' if f.required else ' '} {f.name:<28} {str(f.type):<14} {f.de or '':<16} {f.doc}")


def _mask_row(row: dict) -> dict:
    from countyhealth import privacy

    out = {}
    for k, v in row.items():
        if v is None:
            continue
        if k == "id_number":
            v = privacy.mask_id(str(v))
        elif k == "phone":
            v = privacy.mask_phone(str(v))
        elif isinstance(v, str):
            v = privacy.scrub(v)
        out[k] = v
    return out


@sources.command("check")
@click.argument("name", required=False)
@click.option("--rows", default=5, show_default=True, help="Sample rows to show per stream.")
@click.option("--offline", is_flag=True, help="Only validate the YAML; don't connect.")
def check(name: str | None, rows: int, offline: bool) -> None:
    """Validate the config, connect, count rows and show sample rows (ID numbers and phones masked)."""
    from countyhealth.connectors import connector_class
    from countyhealth.connectors.base import ExtractWindow
    from countyhealth.connectors.config import (
        ConnectionNotFound,
        SourceConfigError,
        get_source,
        load_source,
        source_files,
    )
    from countyhealth.connectors.mapping import map_dataset

    failures = 0
    paths = source_files() if name is None else [None]
    for path in paths:
        try:
            src = get_source(name) if path is None else load_source(path, settings.sources_dir())
        except (SourceConfigError, KeyError) as exc:
            click.secho(f"✗ {exc}", fg="red", err=True)
            failures += 1
            continue
        click.secho(f"✓ {src.path}: {src.kind}, {len(src.streams)} stream(s) — config valid", fg="green")
        if offline:
            continue
        if getattr(src, "retry", None) is not None:  # a check answers in seconds: a dead platform is not waited out
            src.retry = src.retry.model_copy(update={"attempts": min(src.retry.attempts, 3),
                                                     "max_backoff": min(src.retry.max_backoff, 2.0)})
        try:
            conn = connector_class(src.kind).from_source(src)
            conn.check()
        except (ConnectionNotFound, RuntimeError) as exc:
            click.secho(f"  ✗ cannot reach the source: {exc}", fg="red", err=True)
            failures += 1
            continue
        for stream_name, stream in src.streams.items():
            try:
                count = conn.count(stream_name, ExtractWindow())
                sample = conn.preview(stream_name, limit=rows)
            except RuntimeError as exc:
                click.secho(f"  ✗ {stream_name}: {exc}", fg="red", err=True)
                failures += 1
                continue
            total = f"{count:,} rows" if count is not None else "row count not available"
            click.echo(f"  {stream_name}: {total}")
            if sample.num_rows == 0:
                continue
            if stream.cursor is not None and stream.cursor.column not in sample.column_names:
                click.secho(f"  ✗ {stream_name}: cursor column {stream.cursor.column!r} is not in the rows the source "
                            f"returns (they have: {', '.join(sample.column_names)[:300]}) — name the rows' update-time "
                            "column under streams." + stream_name + ".cursor.column, or remove `cursor`", fg="red",
                            err=True)
                failures += 1
            import pyarrow as pa

            sample = sample.append_column("_row", pa.array(range(sample.num_rows), pa.int64()))
            for dmap in stream.maps:
                try:
                    mapped = map_dataset(sample, dmap, src, stream, batch_id="check",
                                         strict_columns=src.kind != "rest")
                except ValueError as exc:
                    click.secho(f"    ✗ {dmap.dataset}: {exc}", fg="red", err=True)
                    failures += 1
                    continue
                click.echo(f"    → {dmap.dataset}: {mapped.issues.num_rows} mapping issue(s) in the sample")
                for rec in mapped.table.drop_columns(["_row", "batch_id", "source_id"]).to_pylist():
                    click.echo("      " + ", ".join(f"{k}={v}" for k, v in _mask_row(rec).items()))
                for issue in mapped.issues.to_pylist()[:5]:
                    click.secho(f"      ! row {issue['_row']}: {issue['rule_id']} ({issue['value']!r})", fg="yellow")
    if failures:
        sys.exit(1)


@sources.command("new")
@click.argument("name")
@click.option("--kind", required=True, help="Connector kind: sql, rest, file, hl7 or an installed plug-in.")
@click.option("--dataset", default="lab_result", type=click.Choice(model.DATASET_NAMES), show_default=True)
@click.option("--extends", "extends", default=None, help="Write a member file extending this template instead "
                                                          "(e.g. _vendors/his_vendor_b.yaml).")
@click.option("--facility-code", default=None)
@click.option("--conn-id", default=None, help="Airflow connection id (default: the source name).")
def new(name: str, kind: str, dataset: str, extends: str | None, facility_code: str | None, conn_id: str | None):
    """Scaffold sources/NAME.yaml with every field of the dataset commented."""
    from countyhealth.connectors import scaffold
    from countyhealth.connectors.config import _SOURCE_ID

    if not _SOURCE_ID.match(name):
        raise click.BadParameter("use lower-case letters, digits and _ (it becomes the source_id on every row)")
    path = settings.sources_dir() / f"{name}.yaml"
    if extends:
        text = (f"# {name}: a member on a shared vendor template\nextends: {extends}\n"
                f"description: {name}\nfacility_code: {facility_code or 'FACILITY_CODE'}\n"
                f"connection: {{conn_id: {conn_id or name}}}\n")
    else:
        text = scaffold.render(kind, name, dataset=dataset, facility_code=facility_code or "FACILITY_CODE",
                               conn_id=conn_id)
    try:
        scaffold.write(path, text)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote sources/{path.name}; fill in the placeholders, then `countyhealth sources check {name}`")
