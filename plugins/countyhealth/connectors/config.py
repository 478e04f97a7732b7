"""Read source YAMLs into typed configs, and resolve their connections. Types live in ``typing.py``.

- ``sources/<source_id>.yaml`` is one source; the file name is its ``source_id``. Files and folders whose
  name starts with ``_`` are templates (``_vendors/his_vendor_b.yaml``), merged under a source that says
  ``extends:`` — twenty township centres on one vendor's HIS share one template and differ in four lines.
- ``${VAR}`` in a value is replaced from the environment; ``COUNTYHEALTH_DATA_DIR`` and
  ``COUNTYHEALTH_COUNTY_DIR`` default to the settings' values.
- Every error names the file, the key and the fix.
- Credentials come from an Airflow connection id (``AIRFLOW_CONN_<ID>`` environment variables first, as
  Airflow itself does, then Airflow's secrets backends and metadata DB when running inside Airflow) or
  from an environment variable; never from the YAML.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from pydantic import ValidationError

from countyhealth import model, settings
from countyhealth.connectors.typing import ConnectionRef, SourceBase

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SOURCE_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
# canonical fields the pipeline fills itself; a map may not set them
_PIPELINE_FIELDS = {"source_id", "batch_id"}


class SourceConfigError(ValueError):
    """A source YAML is wrong. The message names the file, the key and what to do."""

    def __init__(self, file: str, problems: list[tuple[str, str, str]]):
        self.file = file
        self.problems = problems  # (key path, what is wrong, the fix)
        lines = [f"{file}: {key or '(top level)'}: {what}" + (f" — {fix}" if fix else "") for key, what, fix in problems]
        super().__init__("\n".join(lines))


def _defaults() -> dict[str, str]:
    return {"COUNTYHEALTH_DATA_DIR": str(settings.data_dir()), "COUNTYHEALTH_COUNTY_DIR": str(settings.county_dir())}


def _interpolate(node: Any, file: str, key: str, problems: list) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, file, f"{key}.{k}" if key else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, file, f"{key}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        defaults = _defaults()

        def sub(m: re.Match) -> str:
            name = m.group(1)
            value = os.environ.get(name, defaults.get(name))
            if value is None:
                problems.append((key, f"environment variable {name} is not set", f"export {name}=... before running"))
                return m.group(0)
            return value

        return _VAR.sub(sub, node)
    return node


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return override


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. PyYAML's default (YAML 1.1) reads NO, ON, Y, off as booleans —
    and a HIS column or a code named ``NO`` or ``Y`` is common (e.g. ``report_number: NO``)."""


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _read_yaml(path: Path, display: str) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SourceConfigError(display, [(where, f"not valid YAML ({getattr(exc, 'problem', exc)})",
                                           "fix the syntax (indentation, quotes, a missing colon)")]) from None
    except UnicodeDecodeError:
        raise SourceConfigError(display, [("", "not UTF-8 text", "save the file as UTF-8")]) from None
    if not isinstance(data, dict):
        raise SourceConfigError(display, [("", "expected a mapping of keys at the top level", "see sources/README.md")])
    return data


def _fix_for(err: dict) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    if kind == "missing":
        return "add it"
    if kind == "literal_error":
        return f"use one of {ctx['expected']}" if ctx.get("expected") else ""
    if kind == "union_tag_not_found":
        return f"add `{ctx.get('discriminator', 'type')}`"
    return ""


def _format_loc(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("function-after[_one_source(), FieldSpec]",) or str(p).startswith(("function-", "tagged-union")):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def load_source(path: Path, sources_dir: Path | None = None) -> SourceBase:
    """Read, merge, interpolate and validate one source YAML; raise SourceConfigError naming what to fix."""
    from countyhealth.connectors import connector_class, known_kinds

    path = Path(path)
    root = sources_dir or path.parent
    display = f"sources/{path.relative_to(root)}" if path.is_relative_to(root) else path.name
    source_id = path.stem
    if not _SOURCE_ID.match(source_id):
        raise SourceConfigError(display, [("", f"file name {source_id!r} is not a valid source id",
                                           "use lower-case letters, digits and _ (it is recorded on every row)")])
    data = _read_yaml(path, display)
    seen = {path.resolve()}
    while "extends" in data:
        parent_name = data.pop("extends")
        parent = (root / parent_name).resolve()
        if parent in seen or not parent.is_file():
            raise SourceConfigError(display, [("extends", f"template {parent_name!r} not found" if not parent.is_file()
                                               else "templates extend each other in a loop",
                                               "give a path relative to sources/, e.g. _vendors/his_vendor_a.yaml")])
        seen.add(parent)
        data = _merge(_read_yaml(parent, f"sources/{parent_name}"), data)
    problems: list = []
    data = _interpolate(data, display, "", problems)
    if problems:
        raise SourceConfigError(display, problems)
    kind = data.get("kind")
    if kind is None:
        raise SourceConfigError(display, [("kind", "missing", f"add `kind:` — one of {', '.join(known_kinds())}")])
    try:
        cls = connector_class(kind)
    except KeyError:
        raise SourceConfigError(display, [("kind", f"unknown connector kind {kind!r}",
                                           f"use one of {', '.join(known_kinds())} or install the plug-in "
                                           "that provides it")]) from None
    try:
        source = cls.config_model.model_validate(data)
    except ValidationError as exc:
        raise SourceConfigError(display, [(_format_loc(e["loc"]), e["msg"], _fix_for(e)) for e in exc.errors()]) from None
    source.source_id, source.path = source_id, display
    check_mappings(source, display)
    return source


def check_mappings(source: SourceBase, display: str) -> None:
    """Every map names a known dataset and fields; every required field is filled; transforms exist."""
    from countyhealth.connectors.mapping import TRANSFORMS

    problems = []
    for stream_name, stream in source.streams.items():
        for i, dmap in enumerate(stream.maps or []):
            where = f"streams.{stream_name}" + (f".maps[{i}]" if len(stream.maps) > 1 else "")
            if dmap.dataset not in model.DATASET_NAMES:
                problems.append((f"{where}.dataset", f"unknown dataset {dmap.dataset!r}",
                                 f"use one of {', '.join(model.DATASET_NAMES)}"))
                continue
            known = {f.name for f in model.fields(dmap.dataset)}
            for name, spec in dmap.fields.items():
                if name in _PIPELINE_FIELDS:
                    problems.append((f"{where}.fields.{name}", "is filled by the pipeline", "remove it"))
                elif name not in known:
                    close = [k for k in sorted(known) if k.split("_")[0] == name.split("_")[0]][:4]
                    problems.append((f"{where}.fields.{name}", f"{dmap.dataset} has no field {name!r}",
                                     f"did you mean {', '.join(close)}?" if close else
                                     "see `countyhealth sources fields " + dmap.dataset + "`"))
                for step in spec.transform:
                    if step not in TRANSFORMS:
                        problems.append((f"{where}.fields.{name}.transform", f"unknown transform {step!r}",
                                         f"use one of {', '.join(sorted(TRANSFORMS))}"))
            defaulted = set(_PIPELINE_FIELDS)
            if source.facility_code:
                defaulted.add("facility_code")
            if stream.primary_key:
                defaulted.add("source_record_id")
            for req in model.required_fields(dmap.dataset):
                if req not in dmap.fields and req not in defaulted:
                    hint = {"source_record_id": "map it to the source's row key or give the stream a `primary_key`",
                            "facility_code": "map it or set `facility_code:` at the top of the source"}
                    problems.append((f"{where}.fields.{req}", f"required field of {dmap.dataset} is not mapped",
                                     hint.get(req, f"add `{req}: <source column>` under fields")))
    if problems:
        raise SourceConfigError(display, problems)


def source_files(sources_dir: Path | None = None) -> list[Path]:
    """Source YAMLs: every *.yaml / *.yml under sources/ except templates (names starting with _)."""
    root = sources_dir or settings.sources_dir()
    files = []
    for p in sorted(root.rglob("*.y*ml")):
        rel = p.relative_to(root)
        if any(part.startswith(("_", ".")) for part in rel.parts) or p.suffix not in (".yaml", ".yml"):
            continue
        files.append(p)
    return files


def load_sources(sources_dir: Path | None = None, *, include_disabled: bool = False) -> dict[str, SourceBase]:
    """All sources by id. One bad file raises (naming it); duplicate ids are refused."""
    root = sources_dir or settings.sources_dir()
    out: dict[str, SourceBase] = {}
    for path in source_files(root):
        src = load_source(path, root)
        if src.source_id in out:
            raise SourceConfigError(src.path, [("", f"source id {src.source_id!r} is used by {out[src.source_id].path} too",
                                                "rename one file")])
        if src.enabled or include_disabled:
            out[src.source_id] = src
    return out


def get_source(source_id: str, sources_dir: Path | None = None) -> SourceBase:
    root = sources_dir or settings.sources_dir()
    for ext in (".yaml", ".yml"):
        hits = [p for p in source_files(root) if p.name == source_id + ext]
        if hits:
            return load_source(hits[0], root)
    from countyhealth.errors import NotFound

    raise NotFound(f"no source {source_id!r}: expected sources/{source_id}.yaml (see `countyhealth sources list`)")


# ---- connections -----------------------------------------------------------------------------------------

class ConnectionNotFound(RuntimeError):
    """A connection id or variable cannot be resolved (the message says where it was looked for)."""


@dataclass
class ResolvedConnection:
    conn_type: str | None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None  # database name, or the path for sqlite
    extra: dict = field(default_factory=dict)
    uri: str | None = None  # as given, when given as a URI

    def __repr__(self) -> str:  # never print a password
        return f"ResolvedConnection(conn_type={self.conn_type!r}, host={self.host!r}, port={self.port!r})"

    def sqlalchemy_url(self) -> str:
        t = (self.conn_type or "").lower()
        if t in ("sqlite",):
            path = self.schema or self.host or ""
            return f"sqlite:///{path}"
        if t.startswith(("postgresql+", "mysql+", "mssql+", "oracle+", "duckdb", "sqlite+")):
            return self.uri or ""
        driver = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql",
                  "mssql": "mssql+pymssql", "oracle": "oracle+oracledb"}.get(t)
        if driver is None:
            raise ConnectionNotFound(f"connection type {self.conn_type!r} is not a database (sqlite, postgres, mysql, "
                                   "mssql, oracle or a SQLAlchemy URL)")
        from sqlalchemy.engine import URL

        return URL.create(driver, username=self.login, password=self.password, host=self.host, port=self.port,
                          database=self.schema, query={k: str(v) for k, v in self.extra.items()}) \
            .render_as_string(hide_password=False)

    def base_url(self) -> str:
        scheme = self.extra.get("scheme") or ("https" if (self.conn_type or "").lower() == "https" else "http")
        host = self.host or ""
        if "://" in host:  # Airflow http connections often carry the scheme in the host
            return host.rstrip("/")
        return f"{scheme}://{host}" + (f":{self.port}" if self.port else "")


def parse_uri(uri: str) -> ResolvedConnection:
    """An Airflow connection URI (``type://login:password@host:port/schema?extra``) or a SQLAlchemy URL."""
    if uri.lstrip().startswith("{"):
        data = json.loads(uri)
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return ResolvedConnection(data.get("conn_type"), data.get("host"), data.get("port"), data.get("login"),
                                  data.get("password"), data.get("schema"), extra)
    parts = urlsplit(uri)
    scheme = parts.scheme.replace("-", "_")
    if scheme == "sqlite":
        # sqlite:////abs/path (Airflow and SQLAlchemy agree); sqlite:///rel/path
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        return ResolvedConnection("sqlite", schema=path, uri=uri)
    return ResolvedConnection(
        scheme,
        unquote(parts.hostname) if parts.hostname else None,
        parts.port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        unquote(parts.path.lstrip("/")) or None,
        dict(parse_qsl(parts.query)),
        uri,
    )


def resolve_connection(ref: ConnectionRef | None, where: str = "") -> ResolvedConnection | None:
    if ref is None:
        return None
    if ref.url_env:
        value = os.environ.get(ref.url_env)
        if not value:
            raise ConnectionNotFound(f"{where}: environment variable {ref.url_env} is not set — export it with the "
                                   "source's URL (credentials stay out of the YAML)")
        return parse_uri(value)
    env = f"AIRFLOW_CONN_{ref.conn_id.upper()}"
    if os.environ.get(env):
        return parse_uri(os.environ[env])
    try:  # inside Airflow: secrets backends and the metadata DB
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(ref.conn_id)
    except Exception as exc:  # noqa: BLE001 - outside a task Airflow raises several kinds
        raise ConnectionNotFound(
            f"{where}: Airflow connection {ref.conn_id!r} not found ({type(exc).__name__}) — define it in Airflow "
            f"(Admin → Connections, or `airflow connections add {ref.conn_id} --conn-uri ...`) or export {env}"
        ) from None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return ResolvedConnection(conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema, extra)
