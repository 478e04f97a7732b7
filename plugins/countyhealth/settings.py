"""Where things live. One place resolves paths and the warehouse URL; nothing else reads env vars for them.

- ``COUNTYHEALTH_HOME``: the project directory (holding ``sources/``, ``sql/``, ``expectations/``);
  defaults to the checkout this package sits in.
- ``COUNTYHEALTH_DATA_DIR``: landing zone, embedded warehouse, reports; defaults to ``$HOME/data``.
- ``COUNTYHEALTH_WAREHOUSE_URL``: the one setting that picks the warehouse (any SQLAlchemy URL:
  ``duckdb:///...`` or ``postgresql+psycopg://...``); defaults to the DuckDB file ``data/warehouse.duckdb``.
- ``COUNTYHEALTH_SOURCES_DIR``: the source YAMLs; defaults to ``sources/`` in the project.
- ``COUNTYHEALTH_CONFIG_DIR``: the county's local configuration (code maps, recognised items, identity
  thresholds and trust order); defaults to ``config/`` in the project.
- ``COUNTYHEALTH_COUNTY_DIR``: where the simulated county lives (``countyhealth simulate``); defaults to
  ``<data dir>/county``. Source YAMLs of the demo county refer to it as ``${COUNTYHEALTH_COUNTY_DIR}``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_home() -> Path:
    env = os.environ.get("COUNTYHEALTH_HOME")
    if env:
        return Path(env).resolve()
    # plugins/countyhealth/settings.py -> the checkout
    return _PACKAGE_DIR.parent.parent


def data_dir() -> Path:
    env = os.environ.get("COUNTYHEALTH_DATA_DIR")
    path = Path(env).resolve() if env else project_home() / "data"
    return path


def sql_dir() -> Path:
    return project_home() / "sql"


def sources_dir() -> Path:
    env = os.environ.get("COUNTYHEALTH_SOURCES_DIR")
    return Path(env).resolve() if env else project_home() / "sources"


def config_dir() -> Path:
    env = os.environ.get("COUNTYHEALTH_CONFIG_DIR")
    return Path(env).resolve() if env else project_home() / "config"


def county_dir() -> Path:
    env = os.environ.get("COUNTYHEALTH_COUNTY_DIR")
    return Path(env).resolve() if env else data_dir() / "county"


def expectations_dir() -> Path:
    return project_home() / "expectations"


def landing_dir() -> Path:
    return data_dir() / "landing"


def reports_dir() -> Path:
    return data_dir() / "reports"


def default_warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def warehouse_url() -> str:
    """The warehouse SQLAlchemy URL: ``COUNTYHEALTH_WAREHOUSE_URL`` or the embedded DuckDB file."""
    url = os.environ.get("COUNTYHEALTH_WAREHOUSE_URL")
    if url:
        return url
    return f"duckdb:///{default_warehouse_path()}"
