"""The regional lab centre (区域检验中心) and its LIS vendor's platform API — the vendor with every habit.

Many county medical communities run one lab for all members: township centres send samples, the centre
reports. Its LIS vendor (vendor C here) exposes results over an HTTP API that has the habits common among
Chinese health-IT vendors, each switchable per test (:class:`LabApiConfig`):

- OAuth 2.0 client credentials at ``POST /oauth/token``; the endpoint reads only one body encoding (form by
  default) and answers ``401 invalid_client`` to anything else — the same answer as for a wrong secret; the
  token sits in ``data.access_token`` and its lifetime in ``data.expires_in``, as a string;
- errors inside HTTP 200: ``{"code": "50001", "msg": "系统繁忙…", "data": {"list": null}}`` now and then
  (every ``busy_every``-th data request), an expired token as code ``40101``, a missing parameter as ``40003``;
- 429 bursts without ``Retry-After`` (every ``burst_every``-th data request starts ``burst_length`` of them)
  besides a sliding-window rate limit;
- cursor paging: ``GET /api/v2/lis/results?orgCode=…&beginTime=…&endTime=…&pageSize=…&cursor=…`` ordered by
  update time then id, an opaque keyset token in ``data.nextCursor``, the total in ``data.total``; the page
  size is capped at ``max_page_size`` whatever the client asks for; ``orgCode`` is required;
- a mid-run failure: ``fail_at_page`` answers 502 for that page (counted from the window's first page) until
  the test clears it; ``refuse_with`` answers a given code and message to every data request.

Store: a SQLite file ``regional_lab/lis.sqlite`` filled while the county is generated (60 days of history,
then each simulated day), one row per result item carrying the patient as the LIS registered them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from countyhealth import reference
from countyhealth.simulate import his
from countyhealth.simulate.http_api import ApiServer, ApiState, JsonHandler, credentials, platform_db
from countyhealth.simulate.noise import future_typo

SOURCE_ID = "lis_regional"
TABLE = "lis_result"
COLUMNS = ["id", "reportNo", "patientId", "patientName", "sex", "birthDate", "idCard", "phone", "orgCode",
           "itemCode", "itemName", "result", "unit", "refRange", "flag", "specimenNo", "collectTime", "reportTime",
           "status", "updateTime"]
PANELS = {"blood": ["HR-WBC", "HR-RBC", "HR-HGB", "HR-PLT"], "liver": ["HR-ALT", "HR-AST", "HR-TBIL"],
          "kidney": ["HR-CREA", "HR-UREA"], "glucose": ["HR-GLU"], "lipids": ["HR-TC", "HR-TG"],
          "serology": ["HR-HBSAG"]}
BACKLOG_DAYS = 60
REPORTS_PER_RESIDENT_YEAR = 2.0


def _t(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None


class LabStore:
    """Writes the centre's results while the county is generated."""

    def __init__(self, path: Path, county, *, fresh: bool = True):
        self.db = platform_db(path, {TABLE: COLUMNS}, fresh=fresh)
        self.county = county
        if fresh:
            self.db.execute(f"CREATE INDEX ix_lis_updated ON {TABLE} (updateTime, id)")
        self.seq = 0
        self.patients: dict[int, dict] = {}  # resident index -> the patient as the LIS registered them

    def state(self) -> dict:
        return {"seq": self.seq, "patients": dict(self.patients)}

    def restore(self, state: dict) -> None:
        self.seq, self.patients = state["seq"], dict(state["patients"])

    def initial_backlog(self) -> None:
        start = self.county.cfg.start_date
        for back in range(BACKLOG_DAYS, 0, -1):
            self._reports(start - dt.timedelta(days=back), random.Random(f"{self.county.cfg.seed}|lis|-{back}"))
        self.db.commit()

    def day(self, day: int, date: dt.date) -> None:
        self._reports(date, random.Random(f"{self.county.cfg.seed}|lis|{day}"))
        self.db.commit()

    def _patient(self, i: int, rng: random.Random) -> dict:
        if i not in self.patients:
            c = self.county
            r = c.residents[i]
            p = c.typed(r, rng)
            self.seq += 1
            pid = f"LP{self.seq:08d}"
            self.patients[i] = {"patientId": pid, "patientName": p.name, "sex": p.sex_or(),
                                "birthDate": p.birth_text(), "idCard": p.id_number, "phone": p.phone}
            c.truth.record(SOURCE_ID, "patient", pid, r.key, p.tags)
        return self.patients[i]

    def _reports(self, date: dt.date, rng: random.Random) -> None:
        c = self.county
        items = reference.lab_items()
        n = int(len(c.residents) * REPORTS_PER_RESIDENT_YEAR / 365 + rng.random())
        for _ in range(n):
            i = rng.randrange(len(c.residents))
            r = c.residents[i]
            patient = self._patient(i, rng)
            township = c.townships[r.township_index % len(c.townships)]
            collected = dt.datetime.combine(date, dt.time(rng.randint(7, 10), rng.randint(0, 59)))
            reported = collected + dt.timedelta(minutes=rng.randint(90, 360))
            self.seq += 1
            report_no = f"LB{self.seq:08d}"
            for panel in rng.sample(list(PANELS), k=rng.randint(1, 2)):
                for code in PANELS[panel]:
                    self.seq += 1
                    rid = f"LR{self.seq:09d}"
                    item = items[code]
                    value, text = his.lab_value(item, rng)
                    unit = item.canonical_unit or ""
                    result = text if text is not None else f"{value:.2f}"
                    flag = ""
                    if value is not None and item.ref_high is not None:
                        flag = "H" if value > item.ref_high else ("L" if value < (item.ref_low or 0) else "N")
                    row = {**patient, "id": rid, "reportNo": report_no, "orgCode": township.code,
                           "itemCode": his.LAB_LOCAL[code][0], "itemName": item.name, "result": result, "unit": unit,
                           "refRange": f"{item.ref_low}-{item.ref_high}" if item.quantitative else "阴性",
                           "flag": flag, "specimenNo": f"S{report_no}", "collectTime": _t(collected),
                           "reportTime": _t(reported), "status": "F", "updateTime": _t(reported)}
                    defect = c.data_noise.roll(rng)
                    if defect in ("implausible_value", "unknown_code") and not item.quantitative:
                        defect = None
                    if defect == "implausible_value":
                        row["result"] = f"{(item.phys_high or 100) * 50:.2f}"
                    elif defect == "unknown_code":
                        row["unit"] = "mmol/dl"
                    elif defect == "blank_required":
                        row["reportTime"] = None
                    elif defect == "future_date":
                        row["reportTime"] = _t(future_typo(reported))
                    if defect:
                        column = {"implausible_value": "value_numeric", "unknown_code": "unit",
                                  "blank_required": "report_at", "future_date": "report_at"}[defect]
                        c.truth.defect(SOURCE_ID, TABLE, rid, defect, column)
                    self.db.execute(f"INSERT INTO {TABLE} VALUES ({','.join('?' * len(COLUMNS))})",
                                    [row[k] for k in COLUMNS])

    def close(self) -> None:
        self.county.truth.rows[(SOURCE_ID, TABLE)] = self.db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        self.db.commit()
        self.db.close()


# ---- the vendor's API ------------------------------------------------------------------------------------

@dataclass
class LabApiConfig:
    db_path: Path
    client_id: str = "lis-regional-demo"
    client_secret: str = "lis-demo-secret"
    token_encoding: str = "form"  # the body encoding the token endpoint reads: form | json
    token_ttl_s: int = 7200
    rate_limit: float = 100.0  # requests per second before 429
    burst_every: int = 0  # every N-th data request starts a burst of 429s (0: never)
    burst_length: int = 3
    busy_every: int = 0  # every N-th data request answers code 50001 with a null list (0: never)
    fail_at_page: int | None = None  # this page of a window answers 502 until cleared
    refuse_with: tuple[str, str] | None = None  # every data request answers this (code, msg) inside HTTP 200
    max_page_size: int = 100

    @staticmethod
    def default_credentials() -> tuple[str, str]:
        """The platform's client id and secret: COUNTYHEALTH_LIS_CLIENT_ID / _SECRET, or the demo's."""
        return credentials("COUNTYHEALTH_LIS_CLIENT_ID", "COUNTYHEALTH_LIS_CLIENT_SECRET", "lis-regional-demo",
                           "lis-demo-secret")


class _State(ApiState):
    def __init__(self, cfg: LabApiConfig):
        super().__init__(cfg)
        self.data_requests = 0
        self.burst_left = 0
        self.counts = {"token_requests": 0, "tokens_issued": 0, "expired_tokens_presented": 0, "throttled": 0,
                       "busy": 0, "failed_pages": 0, "pages": 0}

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1


def _token(key: tuple[str, str], page: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": list(key), "p": page}).encode()).decode()


def _untoken(text: str) -> tuple[tuple[str, str], int]:
    data = json.loads(base64.urlsafe_b64decode(text.encode()))
    return (data["k"][0], data["k"][1]), int(data["p"])


def _make_handler(state: _State):
    class Handler(JsonHandler):
        server_version = "VendorC-LIS-Gateway/2.1"

        def do_POST(self):
            if urlparse(self.path).path != "/oauth/token":
                return self._send(404, {"code": "404", "msg": "not found"})
            state.count("token_requests")
            cfg = state.cfg
            encoding, body = self._body()
            fields = body if encoding == cfg.token_encoding and body else {}
            if fields.get("client_id") != cfg.client_id or fields.get("client_secret") != cfg.client_secret:
                # the gateway cannot tell a body it does not read from a wrong secret: both are "invalid client"
                return self._send(401, {"error": "invalid_client", "msg": "客户端认证失败"})
            if fields.get("grant_type") != "client_credentials":
                return self._send(400, {"error": "unsupported_grant_type", "msg": "grant_type 不支持"})
            token = secrets.token_urlsafe(24)
            with state.lock:
                state.tokens[token] = time.time() + cfg.token_ttl_s
                state.counts["tokens_issued"] += 1
            return self._send(200, {"code": "0", "msg": "成功", "data": {"access_token": token, "token_type": "bearer",
                                                                         "expires_in": str(cfg.token_ttl_s)}})

        def do_GET(self):
            url = urlparse(self.path)
            cfg = state.cfg
            if url.path == "/health":
                return self._send(200, {"status": "ok"})
            if url.path != "/api/v2/lis/results":
                return self._send(404, {"code": "404", "msg": "not found"})
            auth = self.headers.get("Authorization", "")
            with state.lock:
                expiry = state.tokens.get(auth[7:] if auth.startswith("Bearer ") else "")
            if expiry is None or expiry < time.time():
                if expiry is not None:
                    state.count("expired_tokens_presented")
                return self._send(200, {"code": "40101", "msg": "token 已过期或无效", "data": None})
            with state.lock:
                state.data_requests += 1
                n = state.data_requests
                if cfg.burst_every and n % cfg.burst_every == 0:
                    state.burst_left = cfg.burst_length
                throttle = state.burst_left > 0
                state.burst_left = max(0, state.burst_left - 1)
            if throttle or not state.window.allow():
                state.count("throttled")
                return self._send(429, {"code": "42900", "msg": "请求过于频繁"})  # no Retry-After: a habit
            if cfg.busy_every and n % cfg.busy_every == 0:
                state.count("busy")
                return self._send(200, {"code": "50001", "msg": "系统繁忙，请稍后再试", "data": {"list": None}})
            if cfg.refuse_with:
                return self._send(200, {"code": cfg.refuse_with[0], "msg": cfg.refuse_with[1], "data": None})
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if not q.get("orgCode"):
                return self._send(200, {"code": "40003", "msg": "缺少参数 orgCode", "data": None})
            try:
                size = min(int(q.get("pageSize", 20)), cfg.max_page_size)
                key, page = _untoken(q["cursor"]) if q.get("cursor") else (("", ""), 1)
            except (ValueError, KeyError):
                return self._send(200, {"code": "40002", "msg": "参数格式错误", "data": None})
            if cfg.fail_at_page is not None and page == cfg.fail_at_page:
                state.count("failed_pages")
                return self._send(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
            where, args = ["(updateTime > ? OR (updateTime = ? AND id > ?))"], [key[0], key[0], key[1]]
            if q.get("beginTime"):
                where.append("updateTime >= ?")
                args.append(q["beginTime"])
            if q.get("endTime"):
                where.append("updateTime < ?")
                args.append(q["endTime"])
            con = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
            try:
                con.row_factory = sqlite3.Row
                bounds = " AND ".join(where[1:]) or "1=1"
                total = con.execute(f"SELECT count(*) FROM {TABLE} WHERE {bounds}", args[3:]).fetchone()[0]
                rows = con.execute(f"SELECT * FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY updateTime, id "
                                   "LIMIT ?", [*args, size + 1]).fetchall()
            finally:
                con.close()
            more = len(rows) > size
            rows = rows[:size]
            nxt = _token((rows[-1]["updateTime"], rows[-1]["id"]), page + 1) if more else ""
            state.count("pages")
            return self._send(200, {"code": "0", "msg": "成功", "data": {
                "total": total, "hasNext": more, "nextCursor": nxt, "list": [dict(r) for r in rows]}})

    return Handler


class LabApiServer(ApiServer):
    """The vendor's API over the centre's store, on 127.0.0.1:port; ``state.cfg`` can be changed while it runs."""

    def __init__(self, cfg: LabApiConfig, port: int = 0, host: str = "127.0.0.1"):
        if not Path(cfg.db_path).exists():
            raise FileNotFoundError(f"regional lab store {cfg.db_path} not found: generate the county with "
                                    "`countyhealth simulate generate --regional-lab` first")
        self.state = _State(cfg)
        super().__init__(_make_handler(self.state), port, host)
