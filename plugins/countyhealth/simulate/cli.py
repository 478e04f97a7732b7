"""``countyhealth simulate``: make a county, move it forward a day, run its public-health platform."""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path

import click

from countyhealth import settings


def _county_dir(path: str | None) -> Path:
    return Path(path).resolve() if path else settings.county_dir()


@click.group("simulate")
def simulate() -> None:
    """The simulated county: its members' source systems and the ground truth to score the pipeline."""


@simulate.command("generate")
@click.option("--out", default=None, help="County folder (default COUNTYHEALTH_COUNTY_DIR or data/county).")
@click.option("--residents", default=3000, show_default=True)
@click.option("--days", default=3, show_default=True, help="Days of activity to simulate.")
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), default="2026-03-01", show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--county-hospitals", default=3, show_default=True)
@click.option("--townships", default=20, show_default=True)
@click.option("--villages-per-township", default=13, show_default=True)
@click.option("--noise-scale", default=1.0, show_default=True, help="Multiply every noise rate (0 = a clean county).")
@click.option("--his-url-template", default=None,
              help="SQLAlchemy URL with {facility}, e.g. postgresql+psycopg://u@h/his_{facility} (default SQLite files).")
@click.option("--regional-lab", is_flag=True,
              help="Add the regional lab centre's LIS behind its vendor's API (serve it with serve-regional-lab).")
def generate_command(out, residents, days, start_date, seed, county_hospitals, townships, villages_per_township,
                     noise_scale, his_url_template, regional_lab) -> None:
    """Generate a county and N days of its members' data, with ground truth beside it."""
    from countyhealth.simulate.county import CountyConfig, generate
    from countyhealth.simulate.noise import NoiseRates

    folder = _county_dir(out)
    cfg = CountyConfig(seed=seed, residents=residents, days=days, start_date=start_date.date(),
                       county_hospitals=county_hospitals, townships=townships,
                       villages_per_township=villages_per_township, his_url_template=his_url_template,
                       noise=NoiseRates.scaled(noise_scale), regional_lab=regional_lab)
    t0 = dt.datetime.now()
    manifest = generate(folder, cfg)
    _summary(folder, manifest, (dt.datetime.now() - t0).total_seconds())


@simulate.command("advance")
@click.option("--county", default=None, help="County folder (default COUNTYHEALTH_COUNTY_DIR or data/county).")
@click.option("--days", default=1, show_default=True)
def advance_command(county, days) -> None:
    """Simulate more days onto an existing county (identical to having generated them at once)."""
    from countyhealth.simulate.county import County, load_config

    folder = _county_dir(county)
    t0 = dt.datetime.now()
    manifest = County(folder, load_config(folder)).advance(days)
    _summary(folder, manifest, (dt.datetime.now() - t0).total_seconds())


def _summary(folder: Path, manifest: dict, seconds: float) -> None:
    counts = json.loads((folder / "truth" / "expected_counts.json").read_text())
    total = sum(n for tables in counts["rows"].values() for n in tables.values())
    last = dt.date.fromisoformat(manifest["start_date"]) + dt.timedelta(days=manifest["days"] - 1)
    click.echo(f"county in {folder} ({manifest['residents']:,} residents, through {last}): {total:,} source rows "
               f"in {len(counts['rows'])} source systems, {seconds:.1f}s")
    click.echo(f"connections: {folder / 'connections.env'} (source it, or `airflow connections import "
               f"{folder / 'connections.json'}`)")


@simulate.command("sources")
@click.option("--county", default=None)
@click.option("--out", required=True, help="Folder to write the source YAMLs into (point COUNTYHEALTH_SOURCES_DIR at it).")
def sources_command(county, out) -> None:
    """Write source YAMLs for this county's members (for a county not shaped like the default one)."""
    from countyhealth.simulate.sources import write_sources

    written = write_sources(_county_dir(county), Path(out).resolve())
    click.echo(f"wrote {len(written)} source file(s) into {out}")


@simulate.command("info")
@click.option("--county", default=None)
def info(county) -> None:
    """Rows per source table and injected defects, from the ground truth."""
    folder = _county_dir(county)
    counts = json.loads((folder / "truth" / "expected_counts.json").read_text())
    click.echo(f"{counts['residents']:,} residents, {counts['days']} day(s)")
    for src, tables in sorted(counts["rows"].items()):
        click.echo(f"  {src}: " + ", ".join(f"{t} {n:,}" for t, n in sorted(tables.items())))
    click.echo("defects: " + ", ".join(
        f"{kind} {n}" for kind, n in sorted(_sum_defects(counts["defects"]).items())))
    click.echo("identity noise: " + ", ".join(f"{k} {v}" for k, v in counts["identity_noise"].items()))


def _sum_defects(defects: dict) -> dict:
    out: dict = {}
    for tables in defects.values():
        for kinds in tables.values():
            for kind, n in kinds.items():
                out[kind] = out.get(kind, 0) + n
    return out


@simulate.command("serve-public-health")
@click.option("--county", default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--rate-limit", default=50.0, show_default=True, help="Requests per second before 429.")
@click.option("--fault-5xx", default=0.0, show_default=True, help="Share of requests answered 503.")
@click.option("--fault-slow", default=0.0, show_default=True, help="Share of slow responses.")
@click.option("--slow-seconds", default=2.0, show_default=True)
@click.option("--fault-truncate", default=0.0, show_default=True, help="Share of bodies cut in half.")
@click.option("--token-ttl", default=3600, show_default=True, help="Bearer token lifetime, seconds.")
def serve_public_health(county, host, port, rate_limit, fault_5xx, fault_slow, slow_seconds, fault_truncate,
                        token_ttl) -> None:
    """Run the public-health platform's HTTP API over the county's platform store (until killed)."""
    from countyhealth.simulate.public_health import PublicHealthServer, ServerConfig

    key, secret = ServerConfig.default_credentials()
    cfg = ServerConfig(db_path=_county_dir(county) / "public_health" / "platform.sqlite", app_key=key,
                       app_secret=secret, token_ttl_s=token_ttl, rate_limit=rate_limit, fault_5xx=fault_5xx,
                       fault_slow=fault_slow, slow_seconds=slow_seconds, fault_truncate=fault_truncate)
    _serve(PublicHealthServer(cfg, port=port, host=host), "public-health platform", host, "POST /api/v1/auth/token")


def _serve(server, what: str, host: str, token: str) -> None:
    """Serve in the foreground until SIGTERM (tests and the demo stop it by PID) or Ctrl-C."""
    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"{what} on http://{host}:{server.port} (token: {token})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


@simulate.command("serve-regional-lab")
@click.option("--county", default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8766, show_default=True)
@click.option("--token-encoding", type=click.Choice(["form", "json"]), default="form", show_default=True,
              help="The body encoding its token endpoint reads.")
@click.option("--busy-every", default=0, show_default=True, help="Every N-th page answers code 50001 (0: never).")
@click.option("--burst-every", default=0, show_default=True, help="Every N-th page starts a burst of 429s (0: never).")
@click.option("--max-page-size", default=100, show_default=True, help="The page size it caps requests at.")
def serve_regional_lab(county, host, port, token_encoding, busy_every, burst_every, max_page_size) -> None:
    """Run the regional lab centre's vendor API over the county's LIS store (until killed)."""
    from countyhealth.simulate.regional_lab import LabApiConfig, LabApiServer

    client_id, client_secret = LabApiConfig.default_credentials()
    cfg = LabApiConfig(db_path=_county_dir(county) / "regional_lab" / "lis.sqlite", client_id=client_id,
                       client_secret=client_secret, token_encoding=token_encoding, busy_every=busy_every,
                       burst_every=burst_every, max_page_size=max_page_size)
    _serve(LabApiServer(cfg, port=port, host=host), "regional lab API", host, "POST /oauth/token")
