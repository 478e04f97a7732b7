"""The basic public-health platform (基本公共卫生): its data store and its HTTP API.

Store: a SQLite file with health records (健康档案) and hypertension/diabetes follow-ups (慢病随访).
API (JSON, as provincial platforms expose it):

- ``POST /api/v1/auth/token`` with ``{"app_key": ..., "app_secret": ...}`` → ``{"access_token", "expires_in"}``;
- ``GET /api/v1/health-records`` and ``GET /api/v1/followups`` with ``Authorization: Bearer <token>``,
  ``updated_since`` (ISO-8601, exclusive), ``page`` (from 1) and ``page_size`` (≤ 500) →
  ``{"code": 0, "msg": "ok", "data": {"total", "page", "page_size", "records": [...]}}`` ordered by
  ``updated_at`` then id, so paging is stable.

Rate limit: above ``rate_limit`` requests per second the server answers 429 with ``Retry-After``.
Injected faults for testing connectors: a share of 5xx responses, slow responses, truncated bodies.
The server scaffolding (JSON handler, rate window, threaded server) is shared with the other simulated
platforms (:mod:`countyhealth.simulate.http_api`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from countyhealth.simulate.http_api import ApiServer, ApiState, JsonHandler, credentials, platform_db
from countyhealth.simulate.noise import future_typo
from countyhealth.simulate.residents import Resident

RECORD_COLUMNS = ["dabh", "xm", "xb", "csrq", "sfzh", "lxdh", "xzz", "jddw", "jdrq", "zt", "updated_at"]
FOLLOWUP_COLUMNS = ["sfid", "dabh", "sflx", "sfrq", "sffs", "zz", "ssy", "szy", "tz", "bmi", "xl", "rxyl", "ryjl",
                    "ydcs", "syqk", "fyycx", "ywblfy", "cssffl", "zz_zhuanzhen", "xcsfrq", "kfxt", "chxt", "xtdw",
                    "thxhdb", "dxtfy", "zbdmbd", "sfys", "jddw", "updated_at"]


class PlatformStore:
    """Writes the platform's tables while the county is generated."""

    def __init__(self, path: Path, county, *, fresh: bool = True):
        self.db = platform_db(path, {"health_record": RECORD_COLUMNS, "followup": FOLLOWUP_COLUMNS}, fresh=fresh)
        self.county = county
        if fresh:
            self.db.execute("CREATE INDEX ix_hr_updated ON health_record (updated_at, dabh)")
            self.db.execute("CREATE INDEX ix_fu_updated ON followup (updated_at, sfid)")
        # a record update replaces the row by its number: without this index every update scans the table,
        # which made a year at 380k residents take over an hour
        self.db.execute("CREATE INDEX IF NOT EXISTS ix_hr_dabh ON health_record (dabh)")
        self.seq = 0
        self.next_followup: dict[int, dt.date] = {}

    def state(self) -> dict:
        return {"seq": self.seq, "next_followup": dict(self.next_followup)}

    def restore(self, state: dict) -> None:
        self.seq, self.next_followup = state["seq"], dict(state["next_followup"])

    def _record(self, r: Resident, when: dt.datetime, rng: random.Random) -> None:
        c = self.county
        p = c.typed(r, rng)
        township = c.townships[r.township_index % len(c.townships)]
        row = [r.health_record_number, p.name, p.sex_or(), p.birth_text(), p.id_number, p.phone, p.address,
               township.code, (when - dt.timedelta(days=rng.randint(30, 3000))).date().isoformat(), "在册",
               when.isoformat(timespec="seconds")]
        defect = c.data_noise.roll(rng)
        if defect == "unknown_code":
            row[2] = "3"
            c.truth.defect("public_health", "health_record", r.health_record_number, defect, "sex_code")
        elif defect == "blank_required":
            row[1] = None
            c.truth.defect("public_health", "health_record", r.health_record_number, defect, "name")
        elif defect == "future_date":
            row[3] = future_typo(when.date()).isoformat()
            c.truth.defect("public_health", "health_record", r.health_record_number, defect, "birth_date")
        self.db.execute(f"INSERT INTO health_record VALUES ({','.join('?' * len(row))})", row)
        c.truth.record("public_health", "health_record", r.health_record_number, r.key, p.tags)

    def initial_backlog(self) -> None:
        c = self.county
        rng = random.Random(f"{c.cfg.seed}|ph|backlog")
        start = dt.datetime.combine(c.cfg.start_date, dt.time(0, 0)) - dt.timedelta(days=1)
        for i, r in enumerate(c.residents):
            if rng.random() < 0.92:  # ~92% of residents have a health record (建档率)
                self._record(r, start - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 300)), rng)
            if r.hypertension or r.diabetes:
                # managed patients are followed up every ~90 days on their own phase
                self.next_followup[i] = c.cfg.start_date + dt.timedelta(days=rng.randint(-60, 89))
        for i, due in sorted(self.next_followup.items()):
            if due < c.cfg.start_date:
                self._followups(i, due, rng)
        self.db.commit()

    def _followups(self, i: int, date: dt.date, rng: random.Random) -> None:
        c = self.county
        r = c.residents[i]
        township = c.townships[r.township_index % len(c.townships)]
        for kind, flag in (("hypertension", r.hypertension), ("diabetes", r.diabetes)):
            if not flag:
                continue
            self.seq += 1
            sfid = f"SF{self.seq:09d}"
            sbp = int(rng.gauss(142, 16))
            dbp = int(min(sbp - 20, rng.gauss(86, 10)))
            weight = round(rng.gauss(62, 10), 1)
            glucose, unit = (round(rng.gauss(7.8, 2.0), 1), "mmol/L") if kind == "diabetes" else (None, None)
            if glucose is not None and rng.random() < 0.15:
                glucose, unit = round(glucose * 18.016), "mg/dL"  # some doctors record mg/dL
            updated = dt.datetime.combine(date, dt.time(rng.randint(8, 18), rng.randint(0, 59)))
            row = {
                "sfid": sfid, "dabh": r.health_record_number, "sflx": kind, "sfrq": date.isoformat(),
                "sffs": rng.choice(["1", "1", "2", "3"]), "zz": rng.choice(["无症状", "头痛头晕", "多饮多食"]),
                "ssy": str(sbp), "szy": str(dbp), "tz": str(weight), "bmi": str(round(weight / 1.62 ** 2, 1)),
                "xl": str(int(rng.gauss(76, 9))), "rxyl": str(rng.choice([0, 0, 0, 5, 10, 20])),
                "ryjl": str(rng.choice([0, 0, 1, 2])), "ydcs": str(rng.randint(0, 7)), "syqk": rng.choice("123"),
                "fyycx": rng.choice("1112"), "ywblfy": rng.choice(["0", "0", "0", "1"]),
                "cssffl": "1" if sbp < 140 else "2", "zz_zhuanzhen": "1" if sbp >= 180 else "0",
                "xcsfrq": (date + dt.timedelta(days=90)).isoformat(), "kfxt": None if glucose is None else str(glucose),
                "chxt": None, "xtdw": unit, "thxhdb": None if kind != "diabetes" else str(round(rng.gauss(7.2, 1.1), 1)),
                "dxtfy": "0" if kind == "diabetes" else None, "zbdmbd": "触及正常" if kind == "diabetes" else None,
                "sfys": rng.choice("陈林黄郑") + "医生", "jddw": township.code,
                "updated_at": updated.isoformat(timespec="seconds"),
            }
            defect = c.data_noise.roll(rng)
            if defect == "implausible_value":
                row["ssy"], row["szy"] = "400", "90"
                c.truth.defect("public_health", "followup", sfid, defect, "sbp")
            elif defect == "blank_required":
                row["sfrq"] = None
                c.truth.defect("public_health", "followup", sfid, defect, "visit_date")
            elif defect == "future_date":
                row["sfrq"] = future_typo(date).isoformat()
                c.truth.defect("public_health", "followup", sfid, defect, "visit_date")
            elif defect == "unknown_code":
                row["sffs"] = "7"
                c.truth.defect("public_health", "followup", sfid, defect, "visit_mode")
            self.db.execute(f"INSERT INTO followup VALUES ({','.join('?' * len(FOLLOWUP_COLUMNS))})",
                            [row[k] for k in FOLLOWUP_COLUMNS])
            c.truth.record("public_health", "followup", sfid, r.key)
        self.next_followup[i] = date + dt.timedelta(days=rng.randint(80, 95))

    def day(self, day: int, date: dt.date) -> None:
        c = self.county
        rng = random.Random(f"{c.cfg.seed}|ph|{day}")
        for i, due in sorted(self.next_followup.items()):
            if due <= date:
                self._followups(i, date, rng)
        # a few records updated each day (new phone, moved); the update re-sends the whole record
        for _ in range(max(1, len(c.residents) // 2000)):
            r = c.residents[rng.randrange(len(c.residents))]
            when = dt.datetime.combine(date, dt.time(rng.randint(8, 18), rng.randint(0, 59)))
            self.db.execute("DELETE FROM health_record WHERE dabh = ?", (r.health_record_number,))
            self._record(r, when, rng)
        self.db.commit()

    def close(self) -> None:
        for table in ("health_record", "followup"):
            n = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            self.county.truth.rows[("public_health", table)] = n
        self.db.commit()
        self.db.close()


# ---- the HTTP server ---------------------------------------------------------------------------

@dataclass
class ServerConfig:
    db_path: Path
    app_key: str = "countyhealth-demo"
    app_secret: str = "demo-secret"
    token_ttl_s: int = 3600
    rate_limit: float = 50.0  # requests per second before 429
    fault_5xx: float = 0.0
    fault_slow: float = 0.0
    slow_seconds: float = 2.0
    fault_truncate: float = 0.0
    seed: int = 0
    max_page_size: int = 500

    @staticmethod
    def default_credentials() -> tuple[str, str]:
        """The platform's app key and secret: COUNTYHEALTH_PH_APP_KEY / COUNTYHEALTH_PH_APP_SECRET, or the demo's."""
        return credentials("COUNTYHEALTH_PH_APP_KEY", "COUNTYHEALTH_PH_APP_SECRET", "countyhealth-demo", "demo-secret")


class _State(ApiState):
    def __init__(self, cfg: ServerConfig):
        super().__init__(cfg)
        self.rng = random.Random(cfg.seed)
        self.requests = 0


def _make_handler(state: _State):
    class Handler(JsonHandler):
        server_version = "PublicHealthPlatform/3.2"

        def _throttle_and_faults(self) -> bool:
            cfg = state.cfg
            if not state.window.allow():
                with state.lock:
                    state.requests += 1
                self._send(429, {"code": 429, "msg": "请求过于频繁"}, {"Retry-After": "1"})
                return False
            with state.lock:
                state.requests += 1
                roll = state.rng.random()
            if roll < cfg.fault_5xx:
                self._send(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
                return False
            if roll < cfg.fault_5xx + cfg.fault_slow:
                time.sleep(cfg.slow_seconds)
            self._truncate = cfg.fault_5xx + cfg.fault_slow <= roll < cfg.fault_5xx + cfg.fault_slow + cfg.fault_truncate
            return True

        def do_POST(self):
            if urlparse(self.path).path != "/api/v1/auth/token":
                return self._send(404, {"code": 404, "msg": "not found"})
            if not self._throttle_and_faults():
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"code": 400, "msg": "body must be JSON"})
            if body.get("app_key") != state.cfg.app_key or body.get("app_secret") != state.cfg.app_secret:
                return self._send(401, {"code": 401, "msg": "app_key 或 app_secret 错误"})
            token = secrets.token_urlsafe(24)
            with state.lock:
                state.tokens[token] = time.time() + state.cfg.token_ttl_s
            return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": state.cfg.token_ttl_s})

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/health":
                return self._send(200, {"status": "ok"})
            table = {"/api/v1/health-records": ("health_record", "dabh"), "/api/v1/followups": ("followup", "sfid")}.get(url.path)
            if table is None:
                return self._send(404, {"code": 404, "msg": "not found"})
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            with state.lock:
                expiry = state.tokens.get(token or "")
            if expiry is None or expiry < time.time():
                return self._send(401, {"code": 401, "msg": "token 无效或已过期"})
            if not self._throttle_and_faults():
                return
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                page = int(q.get("page", 1))
                size = min(int(q.get("page_size", 100)), state.cfg.max_page_size)
                if page < 1 or size < 1:
                    raise ValueError
            except ValueError:
                return self._send(400, {"code": 400, "msg": "page and page_size must be positive integers"})
            since = q.get("updated_since") or ""
            name, key = table
            where, args = "WHERE updated_at > ?", [since]
            if name == "followup" and q.get("type"):
                where += " AND sflx = ?"
                args.append(q["type"])
            con = sqlite3.connect(f"file:{state.cfg.db_path}?mode=ro", uri=True)
            try:
                con.row_factory = sqlite3.Row
                total = con.execute(f"SELECT count(*) FROM {name} {where}", args).fetchone()[0]
                rows = con.execute(f"SELECT * FROM {name} {where} ORDER BY updated_at, {key} LIMIT ? OFFSET ?",
                                   [*args, size, (page - 1) * size]).fetchall()
            finally:
                con.close()
            body = {"code": 0, "msg": "ok", "data": {"total": total, "page": page, "page_size": size,
                                                      "records": [dict(r) for r in rows]}}
            return self._send(200, body, truncate=getattr(self, "_truncate", False))

    return Handler


class PublicHealthServer(ApiServer):
    """Run the platform API on 127.0.0.1:port in a background thread (tests) or in the foreground (CLI)."""

    def __init__(self, cfg: ServerConfig, port: int = 0, host: str = "127.0.0.1"):
        if not Path(cfg.db_path).exists():
            raise FileNotFoundError(f"public-health store {cfg.db_path} not found: run `countyhealth simulate generate` first")
        self.state = _State(cfg)
        super().__init__(_make_handler(self.state), port, host)
