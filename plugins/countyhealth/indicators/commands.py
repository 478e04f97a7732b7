"""``countyhealth indicators``: list the monitoring indicators, show one, export the mart, refresh it.

``list`` — the indicators with their definitions and the months the mart holds;
``show NAME [--month YYYY-MM] [--facility CODE]`` — a table: county, townships and facilities (or one unit);
``export --format csv [--out FILE]`` — every row of the mart (stdout by default);
``refresh`` — rebuild the mart now (the nightly ``indicators`` task does it after the shared results).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys

import click
import sqlalchemy as sa

from countyhealth.errors import UserError

EXPORT_COLUMNS = ["indicator", "month_start", "scope", "unit_code", "unit_name", "facility_level", "township_code",
                  "item_code", "numerator", "denominator", "rate", "amount_yuan", "refreshed_at"]


def _wh(url=None):
    from countyhealth.warehouse import Warehouse

    return Warehouse(url)


def _read(wh, sql: str, params: dict | None = None) -> list[dict]:
    with wh.engine.connect() as conn:
        migrated = sa.inspect(conn).has_table("indicator_value")
    if not migrated:
        raise UserError("the warehouse has no indicator tables yet: run `countyhealth warehouse migrate` and "
                        "`countyhealth indicators refresh` (or a night: `countyhealth pipeline run`)")
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params or {})]


def _month(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise UserError(f"--month {value}: write the month as YYYY-MM, e.g. --month 2026-03") from None


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # counts print as counts
    return value


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


@click.group("indicators")
def indicators_group() -> None:
    """County-community monitoring indicators (紧密型县域医共体监测指标): docs/indicators.md."""


@indicators_group.command("list")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def list_command(url) -> None:
    """The indicators, what each counts, and the months the mart holds."""
    from countyhealth.indicators import INDICATORS

    rows = _read(_wh(url), "SELECT indicator, min(month_start) AS first, max(month_start) AS last, count(*) AS n "
                           "FROM indicator_value GROUP BY indicator")
    held = {r["indicator"]: r for r in rows}
    for ind in INDICATORS.values():
        h = held.get(ind.name)
        span = f"{h['first']:%Y-%m}..{h['last']:%Y-%m}, {h['n']:,} rows" if h else "no rows yet"
        click.echo(f"{ind.name:<34} {ind.title} ({span})")
        click.echo(f"{'':<34} {ind.doc}")


@indicators_group.command("show")
@click.argument("name")
@click.option("--month", default=None, help="YYYY-MM (default: the latest month in the mart).")
@click.option("--facility", default=None, help="A facility or township-centre code: only its rows.")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def show_command(name, month, facility, url) -> None:
    """One indicator for a month: the county, each township and each facility (numerator / denominator = rate)."""
    from countyhealth.indicators import INDICATORS

    if name not in INDICATORS:
        raise UserError(f"no indicator {name!r}: `countyhealth indicators list` names them "
                        f"(e.g. {next(iter(INDICATORS))})")
    wh = _wh(url)
    wanted = _month(month)
    if wanted is None:
        latest = _read(wh, "SELECT max(month_start) AS m FROM indicator_value WHERE indicator = :i", {"i": name})
        wanted = latest[0]["m"] if latest else None
        if wanted is None:
            raise UserError(f"{name} has no rows yet: run `countyhealth indicators refresh` after a night has loaded data")
    sql = ("SELECT * FROM indicator_value WHERE indicator = :i AND month_start = :m"
           + (" AND unit_code = :f" if facility else "")
           + " ORDER BY CASE scope WHEN 'county' THEN 0 WHEN 'township' THEN 1 ELSE 2 END, unit_code, item_code")
    rows = _read(wh, sql, {"i": name, "m": wanted, "f": facility})
    if not rows:
        where = f" for {facility}" if facility else ""
        raise UserError(f"{name} has no value for {wanted:%Y-%m}{where}: `countyhealth indicators list` shows the "
                        "months held" + ("; facility codes look like W350125101" if facility else ""))
    ind = INDICATORS[name]
    click.echo(f"{ind.title} — {name}, {wanted:%Y-%m}")
    click.echo(f"  {ind.doc}")
    costed = any(r["amount_yuan"] is not None for r in rows)
    header = f"{'scope':<9} {'unit':<14} {'name':<18} {'item':<12} {'numerator':>10} {'denominator':>12} {'rate':>8}"
    click.echo(header + (f" {'amount ¥':>10}" if costed else ""))
    for r in rows:
        rate = "—" if r["rate"] is None else f"{100 * r['rate']:.1f}%"
        line = (f"{r['scope']:<9} {r['unit_code']:<14} {(r['unit_name'] or ''):<18} {(r['item_code'] or '(all)'):<12} "
                f"{_fmt(r['numerator']):>10} {_fmt(r['denominator']):>12} {rate:>8}")
        click.echo(line + (f" {_fmt(r['amount_yuan'], 2):>10}" if costed else ""))


@indicators_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True,
              help="Output format (csv; xlsx is not there yet).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write (default: standard output).")
@click.option("--indicator", "names", multiple=True, help="Only these indicators (repeatable).")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def export_command(fmt, out, names, url) -> None:
    """Every row of the indicator mart as CSV (UTF-8 with BOM, so Excel reads the Chinese names)."""
    from countyhealth.indicators import INDICATORS

    unknown = [n for n in names if n not in INDICATORS]
    if unknown:
        raise UserError(f"no indicator {unknown[0]!r}: `countyhealth indicators list` names them")
    rows = _read(_wh(url), f"SELECT {', '.join(EXPORT_COLUMNS)} FROM indicator_value "
                           "ORDER BY indicator, month_start, scope, unit_code, item_code")
    if names:
        rows = [r for r in rows if r["indicator"] in names]
    fh = open(out, "w", encoding="utf-8-sig", newline="") if out else sys.stdout
    try:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(EXPORT_COLUMNS)
        for r in rows:
            w.writerow([_cell(r[c]) for c in EXPORT_COLUMNS])
    finally:
        if out:
            fh.close()
    if out:
        click.echo(f"wrote {len(rows):,} rows to {out}", err=True)


@indicators_group.command("refresh")
@click.option("--url", default=None, help="SQLAlchemy URL; default COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file.")
def refresh_command(url) -> None:
    """Rebuild the indicator mart from the warehouse now."""
    from countyhealth import indicators

    s = indicators.refresh(_wh(url))
    span = f"{s.months[0]}..{s.months[-1]}" if s.months else "no data yet"
    click.echo(f"indicators: {s.rows:,} rows, months {span}, in {s.seconds:.1f}s")
