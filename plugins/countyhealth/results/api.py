"""The read-only FHIR API over the shared results (FastAPI, which Airflow already brings; served by uvicorn).

    GET /fhir/Patient/{person_id}
    GET /fhir/Patient/{person_id}/$everything   (the full shared history in one Bundle)
    GET /fhir/Observation?patient={person_id}[&recognised=true]
    GET /fhir/DiagnosticReport?patient={person_id}
    GET /fhir/metadata            (no token)
    GET /health                   (no token)

Access policy (docs/results.md): every member facility of the county medical community may read every
resident's shared results — that is what 互认 is for — with its own bearer token, created by
``countyhealth results token create --facility CODE`` and stored only as a SHA-256 hash. A request may say
which facility it speaks for (``X-Facility-Code``); a token used for another facility is refused (403).
Resident ID numbers and phones are masked unless the token was created ``--identifiers``. Every request —
allowed or not — is written to the audit table: when, which facility and token, which endpoint, which
person, the status and how many resources were returned.

Where the data comes from: on PostgreSQL the warehouse itself; on DuckDB the read-only snapshot that each
refresh publishes (:mod:`.snapshot`) — the API notices a new snapshot and switches to it, and never opens
the warehouse file the nightly run writes. Tokens and the audit trail live in the API's own store
(``COUNTYHEALTH_API_STORE_URL``, default a SQLite file beside the snapshot; point it at PostgreSQL in
production).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI, Header, HTTPException, Request  # module level: FastAPI resolves annotations here
from fastapi.responses import JSONResponse

from countyhealth import settings

log = logging.getLogger(__name__)

_md = sa.MetaData()
API_TOKEN = sa.Table(
    "api_token", _md,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("facility_code", sa.String(32), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("can_see_identifiers", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
    sa.Column("expires_at", sa.DateTime),  # past it the token is refused; rotate before (token rotate)
)
TOKEN_DAYS = 90  # a token's life unless told otherwise: a leaked token is useful for weeks, not forever
ACCESS_AUDIT = sa.Table(
    "access_audit", _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("accessed_at", sa.DateTime, nullable=False),
    sa.Column("facility_code", sa.String(32)),
    sa.Column("token_name", sa.String(100)),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("person_id", sa.String(32)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("resources", sa.Integer),
    sa.Column("client", sa.String(64)),
)


def store_url() -> str:
    url = os.environ.get("COUNTYHEALTH_API_STORE_URL")
    if url:
        return url
    path = settings.data_dir() / "results" / "api.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def store_engine(url: str | None = None) -> sa.Engine:
    engine = sa.create_engine(url or store_url())
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _):  # concurrent readers while the API appends audit rows
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
    _md.create_all(engine)
    if "expires_at" not in {c["name"] for c in sa.inspect(engine).get_columns("api_token")}:
        with engine.begin() as conn:  # a store made before tokens expired: its tokens keep no expiry until rotated
            conn.execute(sa.text("ALTER TABLE api_token ADD COLUMN expires_at TIMESTAMP"))
    return engine


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(facility_code: str, name: str, *, can_see_identifiers: bool = False, url: str | None = None,
                 days: float = TOKEN_DAYS) -> str:
    """A new token for a facility, valid for ``days``; returns it once (only its hash is stored)."""
    token = "chk_" + secrets.token_urlsafe(32)
    now = dt.datetime.now()
    engine = store_engine(url)
    with engine.begin() as conn:
        conn.execute(API_TOKEN.insert().values(token_hash=hash_token(token), facility_code=facility_code, name=name,
                                               can_see_identifiers=can_see_identifiers, created_at=now,
                                               expires_at=now + dt.timedelta(days=days)))
    engine.dispose()
    return token


def rotate_token(name: str, *, grace_hours: float = 24, days: float = TOKEN_DAYS, url: str | None = None) -> str:
    """A new token for the facility of the live token(s) named ``name``; the old ones stop working after
    ``grace_hours`` (time for the facility system to switch). ``KeyError`` when no live token has that name."""
    now = dt.datetime.now()
    engine = store_engine(url)
    try:
        with engine.begin() as conn:
            live = conn.execute(sa.select(API_TOKEN).where(
                API_TOKEN.c.name == name, API_TOKEN.c.revoked_at.is_(None),
                sa.or_(API_TOKEN.c.expires_at.is_(None), API_TOKEN.c.expires_at > now))).mappings().all()
            if not live:
                raise KeyError(name)
            cutoff = now + dt.timedelta(hours=grace_hours)
            conn.execute(API_TOKEN.update().where(API_TOKEN.c.token_hash.in_([r["token_hash"] for r in live]),
                                                  sa.or_(API_TOKEN.c.expires_at.is_(None),
                                                         API_TOKEN.c.expires_at > cutoff))
                         .values(expires_at=cutoff))
    finally:
        engine.dispose()
    first = live[0]
    return create_token(first["facility_code"], name, can_see_identifiers=first["can_see_identifiers"], url=url,
                        days=days)


def registered_facility(facility_code: str, warehouse_url: str | None = None) -> bool:
    """Whether the facility registry (the warehouse's ``facility`` table) knows this code."""
    from countyhealth.warehouse import Warehouse

    wh = Warehouse(warehouse_url)
    try:
        with wh.engine.connect() as conn:
            if not sa.inspect(conn).has_table("facility"):
                return False
            return conn.execute(sa.text("SELECT 1 FROM facility WHERE facility_code = :c LIMIT 1"),
                                {"c": facility_code}).first() is not None
    finally:
        wh.engine.dispose()


def revoke_token(name: str, url: str | None = None) -> int:
    engine = store_engine(url)
    with engine.begin() as conn:
        n = conn.execute(API_TOKEN.update().where(API_TOKEN.c.name == name, API_TOKEN.c.revoked_at.is_(None))
                         .values(revoked_at=dt.datetime.now())).rowcount
    engine.dispose()
    return n


class _TokenCache:
    """Token hash → token row, re-read at most every ``ttl`` seconds (a revocation takes effect within it)."""

    def __init__(self, engine: sa.Engine, ttl: float = 10.0):
        self.engine, self.ttl = engine, ttl
        self._rows: dict[str, tuple[float, dict | None]] = {}

    def get(self, token_hash: str) -> dict | None:
        hit = self._rows.get(token_hash)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(API_TOKEN).where(API_TOKEN.c.token_hash == token_hash)).mappings().first()
        value = dict(row) if row and row["revoked_at"] is None else None
        if value is not None and value.get("expires_at") is not None and value["expires_at"] <= dt.datetime.now():
            value = None  # expired: refused like a revoked one
        self._rows[token_hash] = (now, value)
        return value


class Reader:
    """Connections to wherever the shared results are read from, switching to a newer snapshot when one
    appears (DuckDB) — checked at most once a second."""

    def __init__(self, warehouse_url: str | None = None):
        self.warehouse_url = warehouse_url or settings.warehouse_url()
        self.is_duckdb = self.warehouse_url.startswith("duckdb")
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0

    def _snapshot_stamp(self) -> tuple | None:
        from countyhealth.results import snapshot

        try:
            st = snapshot.path().stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def rows(self, table: str, person_id: str) -> list[dict]:
        """A person's rows of a shared table; on the DuckDB snapshot through a raw cursor (no SQL layer)."""
        if not self.is_duckdb:
            with self.engine().connect() as conn:
                return [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} WHERE person_id = :p"),
                                                      {"p": person_id}).mappings().all()]
        raw = self.engine().raw_connection()
        try:
            cur = raw.driver_connection.cursor()
            cur.execute(f"SELECT * FROM {table} WHERE person_id = ?", [person_id])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            raw.close()

    def engine(self) -> sa.Engine:
        if not self.is_duckdb:
            if self._engine is None:
                self._engine = sa.create_engine(self.warehouse_url, pool_pre_ping=True, pool_size=8)
            return self._engine
        now = time.monotonic()
        if self._engine is not None and now - self._checked < 1.0:
            return self._engine
        with self._lock:
            self._checked = now
            stamp = self._snapshot_stamp()
            if stamp is None:
                raise FileNotFoundError("no shared-results snapshot yet: run `countyhealth results refresh`")
            if stamp != self._stamp:
                from countyhealth.results import snapshot

                old = self._engine
                self._engine = sa.create_engine(f"duckdb:///{snapshot.path()}", connect_args={"read_only": True},
                                                poolclass=sa.pool.QueuePool, pool_size=4, max_overflow=4)
                self._stamp = stamp
                if old is not None:
                    old.dispose()  # connections in use keep the old file open until they return
            return self._engine


def create_app(*, warehouse_url: str | None = None, store: str | None = None, token_cache_seconds: float = 10.0):
    from countyhealth import results
    from countyhealth.results import fhir

    app = FastAPI(title="countyhealth shared results (FHIR R4)", docs_url=None, redoc_url=None)
    reader = Reader(warehouse_url)
    audit_engine = store_engine(store)
    tokens = _TokenCache(audit_engine, token_cache_seconds)

    def outcome(status: int, text: str) -> JSONResponse:
        return JSONResponse(status_code=status, media_type="application/fhir+json", content={
            "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "security" if status in
                                                           (401, 403) else "processing", "diagnostics": text}]})

    def audit(request: Request, token: dict | None, person_id: str | None, status: int, resources: int | None):
        with audit_engine.begin() as conn:
            conn.execute(ACCESS_AUDIT.insert().values(
                accessed_at=dt.datetime.now(), facility_code=token["facility_code"] if token else None,
                token_name=token["name"] if token else None, endpoint=f"{request.method} {request.url.path}",
                person_id=person_id, status=status, resources=resources,
                client=request.client.host if request.client else None))

    def authorise(request: Request, authorization: str | None, facility: str | None, person_id: str | None):
        if not authorization or not authorization.startswith("Bearer "):
            audit(request, None, person_id, 401, None)
            raise HTTPException(401, "a bearer token is required (countyhealth results token create)")
        token = tokens.get(hash_token(authorization[7:].strip()))
        if token is None:
            audit(request, None, person_id, 401, None)
            raise HTTPException(401, "unknown, revoked or expired token (countyhealth results token rotate NAME)")
        if facility and facility != token["facility_code"]:
            audit(request, token, person_id, 403, None)
            raise HTTPException(403, f"this token belongs to another facility than {facility}")
        return token

    def active_person(person_id: str) -> str | None:
        seen = set()
        while person_id not in seen:
            seen.add(person_id)
            rows = reader.rows("empi_person", person_id)
            if not rows:
                return None
            if rows[0]["status"] != "merged" or not rows[0]["merged_into"]:
                return person_id
            person_id = rows[0]["merged_into"]
        return person_id

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc):  # FHIR clients expect OperationOutcome bodies
        return outcome(exc.status_code, str(exc.detail))

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/fhir/metadata")
    def metadata():
        return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.3.0",
                "date": dt.date.today().isoformat(), "format": ["json"],
                "rest": [{"mode": "server", "resource": [
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                    {"type": "Observation", "interaction": [{"code": "search-type"}],
                     "searchParam": [{"name": "patient", "type": "reference"}]},
                    {"type": "DiagnosticReport", "interaction": [{"code": "search-type"}],
                     "searchParam": [{"name": "patient", "type": "reference"}]}]}]}

    def _search(request: Request, patient: str, authorization, facility, build):
        person_id = patient.split("/")[-1]
        token = authorise(request, authorization, facility, person_id)
        active = active_person(person_id)
        if active is None:
            audit(request, token, person_id, 404, 0)
            raise HTTPException(404, f"no person {person_id}")
        resources = build(active, token)
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                  "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                            for r in resources]}
        audit(request, token, active, 200, len(resources))
        return JSONResponse(content=bundle, media_type="application/fhir+json")

    @app.get("/fhir/Patient/{person_id}")
    def read_patient(person_id: str, request: Request, authorization: str | None = Header(None),
                     x_facility_code: str | None = Header(None)):
        token = authorise(request, authorization, x_facility_code, person_id)
        active = active_person(person_id)
        if active is None:
            audit(request, token, person_id, 404, 0)
            raise HTTPException(404, f"no person {person_id}")
        golden = (reader.rows("golden_person", active) or [None])[0]
        res = fhir.patient(active, golden,
                           show_identifiers=bool(token["can_see_identifiers"]))
        if active != person_id:
            res["link"] = [{"other": {"reference": f"Patient/{person_id}"}, "type": "replaces"}]
        audit(request, token, active, 200, 1)
        return JSONResponse(content=res, media_type="application/fhir+json")

    @app.get("/fhir/Patient/{person_id}/$everything")
    def everything(person_id: str, request: Request, authorization: str | None = Header(None),
                   x_facility_code: str | None = Header(None)):
        """The person's full shared history in one Bundle: Patient, lab reports with observations, exam
        reports with imaging studies (FHIR's Patient $everything, limited to what is shared)."""
        token = authorise(request, authorization, x_facility_code, person_id)
        active = active_person(person_id)
        if active is None:
            audit(request, token, person_id, 404, 0)
            raise HTTPException(404, f"no person {person_id}")
        bundle = fhir.bundle_for(active, (reader.rows("golden_person", active) or [None])[0],
                                 results.marked(reader.rows("shared_lab_result", active)),
                                 results.marked(reader.rows("shared_exam_report", active)),
                                 show_identifiers=bool(token["can_see_identifiers"]), bundle_type="searchset")
        audit(request, token, active, 200, len(bundle["entry"]))
        return JSONResponse(content=bundle, media_type="application/fhir+json")

    @app.get("/fhir/Observation")
    def search_observation(patient: str, request: Request, recognised: bool | None = None,
                           authorization: str | None = Header(None), x_facility_code: str | None = Header(None)):
        def build(person_id, token):
            rows = results.marked(reader.rows("shared_lab_result", person_id))
            if recognised is not None:
                rows = [r for r in rows if bool(r["mark"]) == recognised]
            return [fhir.observation(r) for r in rows]
        return _search(request, patient, authorization, x_facility_code, build)

    @app.get("/fhir/DiagnosticReport")
    def search_report(patient: str, request: Request, authorization: str | None = Header(None),
                      x_facility_code: str | None = Header(None)):
        def build(person_id, token):
            out = []
            by_report: dict = {}
            for r in results.marked(reader.rows("shared_lab_result", person_id)):
                by_report.setdefault((r["source_id"], r["report_number"]), []).append(r)
            for rows in by_report.values():
                out.append(fhir.lab_report(rows)[0])
            for r in results.marked(reader.rows("shared_exam_report", person_id)):
                out.append(fhir.exam_report(r)[0])
            return out
        return _search(request, patient, authorization, x_facility_code, build)

    return app


def serve(host: str = "127.0.0.1", port: int = 8800) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False)
