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


_DATE_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                 "%Y/%m/%d", "%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y年%m月%d日 %H:%M",
                 "%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f"]


def guess_format(values: list[str]) -> str | None:
    """The first common strptime format every sample value parses with (for "add a date format")."""
    import datetime as dt

    values = [v.strip() for v in values if v and v.strip()]
    for fmt in _DATE_FORMATS:
        try:
            for v in values:
                dt.datetime.strptime(v, fmt)
        except ValueError:
            continue
        return fmt if values else None
    return None


def fix_for(dataset: str, rule_id: str, field: str | None, values: list[str], spec) -> str:
    """One line saying what to change in the YAML for issues of one rule on a sample."""
    from countyhealth import codes

    f = next((x for x in model.fields(dataset) if x.name == field), None)
    column = spec.column if spec is not None and spec.column else "SOURCE_COLUMN"
    shown = ", ".join(sorted({str(v) for v in values if v is not None})[:6])
    if ".conformance.parse." in rule_id and f is not None and str(f.type).startswith(("date", "timestamp")):
        fmt = guess_format(values)
        return (f'add a date format: `{field}: {{column: {column}, format: "{fmt}"}}`' if fmt else
                f"add a date format matching {shown!r} under fields.{field} (`format:`, strptime codes)")
    if ".conformance.parse." in rule_id:
        return (f"the values ({shown}) are not {f.type if f else 'of the field type'}: add `transform: [numeric_part]` "
                f"or `null_values: [...]` under fields.{field}")
    if ".conformance.text." in rule_id:
        return (f"the values ({shown}) hold a NUL byte (␀) or text that is not valid Unicode (�): the member's "
                "system writes them; fix the records there — until then the rows are quarantined, the batch loads")
    if ".conformance.value_map." in rule_id:
        return (f"add a value map entry for {shown} under fields.{field}.map (or `unmapped: keep`)")
    if f is not None and f.code_set and rule_id.endswith(f"{field}_code"):
        allowed = ", ".join(codes.ALL[f.code_set])
        entries = ", ".join(f"{v}: CODE" for v in sorted({str(v) for v in values if v is not None})[:4])
        return (f"add a value map: `{field}: {{column: {column}, map: {{{entries}}}}}` — the codes of {f.code_set} "
                f"are {allowed}")
    if ".completeness." in rule_id:
        return f"map fields.{field} to the column that holds it (or give a `value:`); it is empty in the sample"
    return "see docs/validation.md for this rule; the rows are quarantined or flagged, never lost"


def _validate_sample(src, stream_name: str, stream, dmap, mapped) -> bool:
    """Run the dataset's GX suite on the mapped sample; print each failing rule with its fix. True if the
    sample's failing share would hold a batch."""
    import datetime as dt

    from countyhealth import validation

    ctx = validation.ValidationContext(source_id=src.source_id, batch_id="check",
                                       load_time=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                                       + dt.timedelta(hours=8), code_system=src.code_system,
                                       max_failing_share=src.validation.max_failing_share)
    out = validation.validate_dataset(dmap.dataset, mapped.table, ctx, prior_issues=mapped.issues)
    click.echo(f"      validated {out.rows_in} sample row(s) with the {dmap.dataset} suite: {out.rows_quarantined} "
               f"would be quarantined, {out.rows_flagged} flagged")
    issues = out.issues.to_pylist()
    for rule, n in sorted(out.rule_counts.items(), key=lambda x: -x[1]):
        hits = [i for i in issues if i["rule_id"] == rule]
        field, severity = hits[0]["column"], hits[0]["severity"]
        values = [i["value"] for i in hits]
        mark, colour = ("✗", "red") if severity == "error" else ("!", "yellow")
        example = next((v for v in values if v is not None), None)
        click.secho(f"      {mark} {rule}: {n} row(s)" + (f", e.g. {example!r}" if example is not None else "")
                    + f" — {fix_for(dmap.dataset, rule, field, values, dmap.fields.get(field))}", fg=colour)
    return out.held


@sources.command("check")
@click.argument("name", required=False)
@click.option("--rows", default=5, show_default=True, help="Sample rows to show per stream.")
@click.option("--offline", is_flag=True, help="Only validate the YAML; don't connect.")
@click.option("--validate", "run_suites", is_flag=True,
              help="Also run the Great Expectations suites on a sample (--sample rows) and name each fix.")
@click.option("--sample", default=200, show_default=True, help="Rows read per stream for --validate.")
def check(name: str | None, rows: int, offline: bool, run_suites: bool, sample: int) -> None:
    """Validate the config, connect, count rows and show sample rows (ID numbers and phones masked).

    With --validate the sample is mapped and checked by the dataset's suite, and every failing rule is shown with
    the change that fixes it (a value map, a date format); exits 1 when the sample would be held."""
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
                sample_rows = conn.preview(stream_name, limit=max(rows, sample) if run_suites else rows)
            except RuntimeError as exc:
                click.secho(f"  ✗ {stream_name}: {exc}", fg="red", err=True)
                failures += 1
                continue
            total = f"{count:,} rows" if count is not None else "row count not available"
            click.echo(f"  {stream_name}: {total}")
            if sample_rows.num_rows == 0:
                continue
            if stream.cursor is not None and stream.cursor.column not in sample_rows.column_names:
                click.secho(f"  ✗ {stream_name}: cursor column {stream.cursor.column!r} is not in the rows the source "
                            f"returns (they have: {', '.join(sample_rows.column_names)[:300]}) — name the rows' update-time "
                            "column under streams." + stream_name + ".cursor.column, or remove `cursor`", fg="red",
                            err=True)
                failures += 1
            import pyarrow as pa

            sample_rows = sample_rows.append_column("_row", pa.array(range(sample_rows.num_rows), pa.int64()))
            for dmap in stream.maps:
                try:
                    mapped = map_dataset(sample_rows, dmap, src, stream, batch_id="check",
                                         strict_columns=src.kind != "rest")
                except ValueError as exc:
                    click.secho(f"    ✗ {dmap.dataset}: {exc}", fg="red", err=True)
                    failures += 1
                    continue
                click.echo(f"    → {dmap.dataset}: {mapped.issues.num_rows} mapping issue(s) in the sample")
                for rec in mapped.table.slice(0, rows).drop_columns(["_row", "batch_id", "source_id"]).to_pylist():
                    click.echo("      " + ", ".join(f"{k}={v}" for k, v in _mask_row(rec).items()))
                if run_suites:
                    failures += _validate_sample(src, stream_name, stream, dmap, mapped)
                    continue
                for issue in mapped.issues.to_pylist()[:5]:
                    click.secho(f"      ! row {issue['_row']}: {issue['rule_id']} ({issue['value']!r})", fg="yellow")
    if failures:
        sys.exit(1)


@sources.command("new")
@click.argument("name")
@click.option("--kind", required=True, help="Connector kind: sql, rest, file, hl7 or an installed plug-in.")
@click.option("--dataset", "datasets", multiple=True, type=click.Choice(model.DATASET_NAMES),
              help="The canonical dataset the stream maps to (default lab_result); repeat it for several from one "
                   "stream, e.g. --dataset contract --dataset person.")
@click.option("--extends", "extends", default=None, help="Write a member file extending this template instead "
                                                          "(e.g. _vendors/his_vendor_b.yaml).")
@click.option("--facility-code", default=None)
@click.option("--conn-id", default=None, help="Airflow connection id (default: the source name).")
def new(name: str, kind: str, datasets: tuple[str, ...], extends: str | None, facility_code: str | None,
        conn_id: str | None):
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
        text = scaffold.render(kind, name, dataset=list(datasets or ("lab_result",)),
                               facility_code=facility_code or "FACILITY_CODE", conn_id=conn_id)
    try:
        scaffold.write(path, text)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote sources/{path.name}; fill in the placeholders, then `countyhealth sources check {name}`")
