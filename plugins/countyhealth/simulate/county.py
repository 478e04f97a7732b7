"""Generate a whole county: registry, residents, and every source system's data for N days, plus truth.

Deterministic for a seed: each concern draws from its own ``random.Random`` seeded from (seed, concern, day),
so adding a day never changes the days before it. Memory is bounded by the population (residents and the
per-member patient index), never by the number of days: rows are written day by day.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import pickle
import random
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from countyhealth import reference
from countyhealth.simulate import his
from countyhealth.simulate.facilities import Facility, make_certifications, make_facilities
from countyhealth.simulate.noise import NoiseRates, TypedPerson, future_typo, type_person
from countyhealth.simulate.residents import Resident, ResidentMaker, make_residents

log = logging.getLogger(__name__)

COMMON_DX = [("J06.9", "急性上呼吸道感染"), ("K29.7", "慢性胃炎"), ("M54.5", "腰痛"), ("J20.9", "急性支气管炎"),
             ("I25.1", "冠状动脉粥样硬化性心脏病"), ("R51", "头痛"), ("N39.0", "泌尿道感染"), ("A09", "感染性腹泻"),
             ("M17.9", "膝关节病"), ("K80.2", "胆囊结石"), ("J45.9", "哮喘"), ("E78.5", "高脂血症")]
PANELS = {
    "blood": ["HR-WBC", "HR-RBC", "HR-HGB", "HR-PLT"], "liver": ["HR-ALT", "HR-AST", "HR-TBIL", "HR-ALB"],
    "kidney": ["HR-CREA", "HR-UREA", "HR-UA"], "electrolytes": ["HR-K", "HR-NA", "HR-CL", "HR-CA"],
    "glucose": ["HR-GLU"], "lipids": ["HR-TC", "HR-TG", "HR-HDL", "HR-LDL"], "urine": ["HR-UPRO", "HR-UGLU", "HR-UBLD"],
    "serology": ["HR-HBSAG", "HR-HCVAB"], "crp": ["HR-CRP"], "tsh": ["HR-TSH"], "pt": ["HR-PT"],
}
EXAM_TEXT = {
    "CT": ("{site}扫描，所见结构清晰，未见明显异常密度影。", ["{site}CT平扫未见明显异常", "{site}少许慢性炎症"]),
    "MR": ("{site}MR平扫，信号未见明显异常。", ["{site}MR未见明显异常", "{site}退行性变"]),
    "DR": ("{site}正位片：骨质结构完整，软组织未见异常。", ["{site}未见明显异常", "{site}纹理增多"]),
    "US": ("{site}形态大小正常，回声均匀，未见明显占位。", ["{site}未见明显异常", "{site}轻度回声增粗"]),
    "ECG": ("窦性心律，心率{hr}次/分，PR、QRS、QT间期正常。", ["正常心电图", "窦性心律，ST-T改变"]),
}


@dataclass
class CountyConfig:
    seed: int = 42
    residents: int = 3000
    days: int = 3
    start_date: dt.date = dt.date(2026, 3, 1)
    region: str = "350125"
    county_name: str = "永泰县"
    county_hospitals: int = 3
    townships: int = 20
    villages_per_township: int = 13
    his_url_template: str | None = None  # e.g. postgresql+psycopg://u@h/db_{facility}; default SQLite files
    noise: NoiseRates = field(default_factory=NoiseRates)
    visits_per_resident_year: float = 6.0  # China: ~6 outpatient visits per person a year
    # the regional lab centre's LIS behind its vendor's API (simulate/regional_lab.py); off by default, so the
    # default county — and its sources/ — stay as they are
    regional_lab: bool = field(default=False, repr=False)


STATE_FILE = ".generator-state.pickle"  # what `simulate advance` needs to continue where generation stopped


def _rng(seed: int, *parts) -> random.Random:
    return random.Random("|".join(map(str, (seed, *parts))))


class Truth:
    """Ground truth, streamed to CSV: which resident each person-bearing record belongs to, and defects."""

    def __init__(self, folder: Path, *, resume: dict | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        mode = "a" if resume else "w"
        self._records = (folder / "records.csv").open(mode, encoding="utf-8", newline="")
        self.records = csv.writer(self._records, lineterminator="\n")
        self._defects = (folder / "defects.csv").open(mode, encoding="utf-8", newline="")
        self.defects = csv.writer(self._defects, lineterminator="\n")
        if not resume:
            self.records.writerow(["source_id", "table", "source_record_id", "resident_key", "noise"])
            self.defects.writerow(["source_id", "table", "source_record_id", "defect", "column"])
        self.rows: Counter = Counter()
        self.defect_counts: Counter = Counter((resume or {}).get("defect_counts", {}))
        self.noise_counts: Counter = Counter((resume or {}).get("noise_counts", {}))
        self.file_rows: Counter = Counter((resume or {}).get("file_rows", {}))  # rows of sources that append files

    def state(self) -> dict:
        return {"defect_counts": dict(self.defect_counts), "noise_counts": dict(self.noise_counts),
                "file_rows": dict(self.file_rows)}

    def record(self, source_id, table, record_id, resident_key, tags=()):
        self.records.writerow([source_id, table, record_id, resident_key, ";".join(tags)])
        for t in tags:
            self.noise_counts[t] += 1

    def defect(self, source_id, table, record_id, kind, column=""):
        self.defects.writerow([source_id, table, record_id, kind, column])
        self.defect_counts[(source_id, table, kind)] += 1

    def close(self, extra: dict) -> None:
        self._records.close()
        self._defects.close()
        rows: dict = defaultdict(dict)
        for (src, table), n in sorted({**self.file_rows, **self.rows}.items()):
            rows[src][table] = n
        defects: dict = defaultdict(lambda: defaultdict(dict))
        for (src, table, kind), n in sorted(self.defect_counts.items()):
            defects[src][table][kind] = n
        summary = {"rows": rows, "defects": defects, "identity_noise": dict(sorted(self.noise_counts.items())), **extra}
        (self.folder / "expected_counts.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1, sort_keys=True))


class DataNoise:
    """Row-level defects, each recorded in truth."""

    def __init__(self, rates: NoiseRates, truth: Truth):
        self.rates, self.truth = rates, truth

    def roll(self, rng: random.Random) -> str | None:
        r = rng.random()
        for kind in ("blank_required", "implausible_value", "unknown_code", "future_date"):
            p = getattr(self.rates, kind)
            if r < p:
                return kind
            r -= p
        return None


class County:
    def __init__(self, out: Path, cfg: CountyConfig):
        self.out, self.cfg = out, cfg
        rng = _rng(cfg.seed, "registry")
        self.facilities = make_facilities(cfg.region, cfg.county_name, cfg.county_hospitals, cfg.townships,
                                          cfg.villages_per_township, rng)
        self.by_code = {f.code: f for f in self.facilities}
        end = cfg.start_date + dt.timedelta(days=max(cfg.days - 1, 0))
        self.certifications = make_certifications(self.facilities, cfg.start_date, end, _rng(cfg.seed, "eqa"))
        maker = ResidentMaker(_rng(cfg.seed, "residents"), self.facilities, cfg.region, cfg.start_date)
        self.residents: list[Resident] = make_residents(cfg.residents, maker)
        self.by_key = {r.key: r for r in self.residents}
        self.county_level = [f for f in self.facilities if f.level == "county"]
        self.townships = [f for f in self.facilities if f.level == "township"]
        # per-member patient index: (his facility, resident index) -> patient id (registration on first visit)
        self.patients: dict[tuple[str, int], str] = {}
        self.seq: Counter = Counter()
        # updates scheduled for a later day: late lab corrections, inpatient discharges
        self.pending: dict[int, list] = defaultdict(list)
        weights = []
        for r in self.residents:
            age = r.age(cfg.start_date)
            w = 1.0 + (age >= 60) * 1.5 + (age < 6) * 1.0 + r.hypertension * 0.8 + r.diabetes * 0.8
            weights.append(w)
        total = 0.0
        self.cum_weights = []
        for w in weights:
            total += w
            self.cum_weights.append(total)

    # ---- infrastructure -----------------------------------------------------------------------
    def his_url(self, f: Facility) -> str:
        if self.cfg.his_url_template:
            return self.cfg.his_url_template.format(facility=f.code.lower())
        return f"sqlite:///{self.out / 'his' / (f.code + '.sqlite')}"

    def source_id(self, f: Facility) -> str:
        return f"his_{f.code.lower()}"

    def next_id(self, prefix: str) -> str:
        self.seq[prefix] += 1
        return f"{prefix}{self.seq[prefix]:08d}"

    # ---- generation ---------------------------------------------------------------------------
    def generate(self) -> dict:
        """A new county: registry, backlogs, then ``cfg.days`` simulated days."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "his").mkdir(exist_ok=True)
        (self.out / "registry").mkdir(exist_ok=True)
        self._write_registry()
        self.truth = Truth(self.out / "truth")
        self._write_residents_truth()
        self._open(fresh=True)
        self.platform.initial_backlog()
        self.contracts.initial_backlog()
        if self.lab:
            self.lab.initial_backlog()
        return self._run_days(0, self.cfg.days)

    def advance(self, days: int) -> dict:
        """Simulate ``days`` more days onto a county generated earlier (the nightly demo's next day)."""
        state = pickle.loads((self.out / STATE_FILE).read_bytes())
        if state["fingerprint"] != self.fingerprint():
            raise ValueError("this county was generated with other settings; generate it again")
        self.patients, self.seq = state["patients"], state["seq"]
        self.pending = state["pending"]
        self.truth = Truth(self.out / "truth", resume=state["truth"])
        self._open(fresh=False)
        self.platform.restore(state["platform"])
        self.contracts.restore(state["contracts"])
        if self.lab:
            self.lab.restore(state["lab"])
        return self._run_days(state["days_done"], state["days_done"] + days)

    def fingerprint(self) -> str:
        c = dataclasses.replace(self.cfg, days=0)
        return hashlib.sha256(repr(c).encode()).hexdigest()[:16]

    def _open(self, *, fresh: bool) -> None:
        from countyhealth.simulate.contracts import ContractExporter
        from countyhealth.simulate.public_health import PlatformStore

        self.data_noise = DataNoise(self.cfg.noise, self.truth)
        self.writers = {f.code: his.HisWriter(self.his_url(f), f.his_vendor, fresh=fresh)
                        for f in self.county_level + self.townships}
        self.platform = PlatformStore(self.out / "public_health" / "platform.sqlite", self, fresh=fresh)
        self.contracts = ContractExporter(self.out / "contracts" / "inbox", self)
        self.lab = None
        if self.cfg.regional_lab:
            from countyhealth.simulate.regional_lab import LabStore

            self.lab = LabStore(self.out / "regional_lab" / "lis.sqlite", self, fresh=fresh)

    def _run_days(self, first: int, last: int) -> dict:
        cfg = self.cfg
        for day in range(first, last):
            date = cfg.start_date + dt.timedelta(days=day)
            self._his_day(day, date)
            self.platform.day(day, date)
            self.contracts.day(day, date)
            if self.lab:
                self.lab.day(day, date)
            for w in self.writers.values():
                w.flush()
            log.info("simulated %s", date)
        for f in self.county_level + self.townships:
            w = self.writers[f.code]
            w.flush()
            with w.engine.connect() as conn:  # what the source really holds (vendor A updates in place)
                for kind, table in w.tables.items():
                    n = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                    self.truth.rows[(self.source_id(f), table.name)] = n
            w.close()
        self.platform.close()
        if self.lab:
            self.lab.close()
        self.truth.file_rows.update({k: v for k, v in self.truth.rows.items() if k[0] == "contracts"})
        for k in [k for k in self.truth.rows if k[0] == "contracts"]:
            del self.truth.rows[k]
        self.truth.rows[("registry", "facilities")] = len(self.facilities)
        self.truth.close({"residents": len(self.residents), "days": last})
        state = {"fingerprint": self.fingerprint(), "days_done": last, "patients": self.patients, "seq": self.seq,
                 "pending": self.pending, "truth": self.truth.state(), "platform": self.platform.state(),
                 "contracts": self.contracts.state(), **({"lab": self.lab.state()} if self.lab else {})}
        tmp = self.out / (STATE_FILE + ".tmp")
        tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, self.out / STATE_FILE)
        manifest = {
            "seed": cfg.seed, "residents": cfg.residents, "days": last, "start_date": cfg.start_date.isoformat(),
            "region": cfg.region, "county_name": cfg.county_name,
            "his": {self.source_id(f): {"facility_code": f.code, "vendor": f.his_vendor,
                                        "url": None if cfg.his_url_template else f"his/{f.code}.sqlite"}
                    for f in self.county_level + self.townships},
            "public_health": "public_health/platform.sqlite", "contracts": "contracts/inbox",
            **({"regional_lab": "regional_lab/lis.sqlite"} if cfg.regional_lab else {}),
            "noise": dataclasses.asdict(cfg.noise),
            "config": {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in dataclasses.asdict(cfg).items()
                       if k != "noise"},
        }
        (self.out / "county.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True))
        self.write_connections()
        return manifest

    def write_connections(self, ph_port: int = 8765) -> None:
        """Airflow connections for every source system: connections.env (AIRFLOW_CONN_*) and
        connections.json (for `airflow connections import`). These live in the county's data folder."""
        from countyhealth.simulate.public_health import ServerConfig

        conns = {}
        for f in self.county_level + self.townships:
            url = self.his_url(f)
            if url.startswith("sqlite:///"):
                url = "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
            conns[self.source_id(f)] = {"uri": url}
        key, secret = ServerConfig.default_credentials()
        conns["public_health"] = {"conn_type": "http", "host": "127.0.0.1", "port": ph_port, "login": key,
                                  "password": secret}
        if self.cfg.regional_lab:
            from countyhealth.simulate.regional_lab import LabApiConfig

            client_id, client_secret = LabApiConfig.default_credentials()
            conns["lis_regional"] = {"conn_type": "http", "host": "127.0.0.1", "port": ph_port + 1,
                                     "login": client_id, "password": client_secret}
        lines = []
        for cid, c in conns.items():
            if "uri" in c:
                lines.append(f"AIRFLOW_CONN_{cid.upper()}={c['uri']}")
            else:
                lines.append(f"AIRFLOW_CONN_{cid.upper()}={c['conn_type']}://{c['login']}:{c['password']}@"
                             f"{c['host']}:{c['port']}")
        (self.out / "connections.env").write_text("\n".join(lines) + "\n")
        airflow_json = {}
        for cid, c in conns.items():
            if "uri" in c:
                airflow_json[cid] = {"conn_type": c["uri"].split(":", 1)[0].split("+")[0],
                                     "host": "", "schema": c["uri"].split(":///", 1)[1]
                                     if c["uri"].startswith("sqlite") else None, "extra": ""}
                if not c["uri"].startswith("sqlite"):
                    from countyhealth.connectors.config import parse_uri

                    r = parse_uri(c["uri"])
                    airflow_json[cid] = {"conn_type": "postgres", "host": r.host, "port": r.port, "login": r.login,
                                         "password": r.password, "schema": r.schema, "extra": ""}
            else:
                airflow_json[cid] = {k: c[k] for k in ("conn_type", "host", "port", "login", "password")}
        (self.out / "connections.json").write_text(json.dumps(airflow_json, ensure_ascii=False, indent=1))

    def _write_registry_only(self) -> None:
        """Just the registry files (for writing a county's source YAMLs without simulating it)."""
        (self.out / "registry").mkdir(parents=True, exist_ok=True)
        self._write_registry()

    def _write_registry(self) -> None:
        with (self.out / "registry" / "facilities.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["facility_code", "name", "level", "his_vendor", "parent_code", "township", "region_code"])
            for f in self.facilities:
                w.writerow([f.code, f.name, f.level, f.his_vendor or "", f.parent_code or "", f.township or "", f.region_code])
        with (self.out / "registry" / "eqa.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["facility_code", "item_code", "period_start", "period_end", "passed"])
            for c in self.certifications:
                w.writerow([c.facility_code, c.item_code, c.period_start, c.period_end, "1" if c.passed else "0"])

    def _write_residents_truth(self) -> None:
        with (self.out / "truth" / "residents.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["resident_key", "name", "sex", "birth_date", "id_number", "phone", "household", "village_code",
                        "hypertension", "diabetes", "twin_of", "guardian", "lunar_birth_date"])
            for r in self.residents:
                w.writerow([r.key, r.name, r.sex, r.birth_date, r.id_number or "", r.phone or "", r.household,
                            r.village_code, int(r.hypertension), int(r.diabetes), r.twin_of or "", r.guardian or "",
                            r.lunar_birth_date or ""])

    def typed(self, r: Resident, rng: random.Random) -> TypedPerson:
        guardian = self.by_key.get(r.guardian) if r.guardian else None
        return type_person(r, rng, self.cfg.noise, self.cfg.start_date, guardian)

    # ---- HIS activity -------------------------------------------------------------------------
    def _patient(self, f: Facility, idx: int, when: dt.datetime, rng: random.Random) -> str:
        key = (f.code, idx)
        if key in self.patients and rng.random() > 0.01:
            return self.patients[key]
        # first visit (or a 1% duplicate registration: a second card at the same member)
        r = self.residents[idx]
        p = self.typed(r, rng)
        w = self.writers[f.code]
        src = self.source_id(f)
        if f.his_vendor == "A":
            pid = self.next_id(f"{f.code[-3:]}P")
            row = {"PATIENT_ID": pid, "NAME": p.name, "SEX": his.SEX_A[p.sex_or()], "DATE_OF_BIRTH": p.birth_text(),
                   "ID_TYPE": "01" if p.id_number else None, "ID_NO": p.id_number, "PHONE_NUMBER": p.phone,
                   "MAILING_ADDRESS": p.address, "REGISTER_ORG": f.code, "UPDATE_TIME": his.iso(when)}
        else:
            pid = self.next_id(f"HZ{f.code[-3:]}")
            row = {"hzid": pid, "xm": p.name, "xb": his.SEX_B[p.sex_or()], "csrq": p.birth_text("%Y%m%d"),
                   "zjlx": "居民身份证" if p.id_number else None, "sfzh": p.id_number, "lxdh": p.phone,
                   "jtzz": p.address, "jgdm": f.code, "gxsj": his.b_time(when)}
        defect = self.data_noise.roll(rng)
        name_col = "NAME" if f.his_vendor == "A" else "xm"
        sex_col = "SEX" if f.his_vendor == "A" else "xb"
        if defect == "blank_required":
            row[name_col] = ""
            self.truth.defect(src, w.table_name("patient"), pid, defect, "name")
        elif defect == "unknown_code":
            row[sex_col] = "X"
            self.truth.defect(src, w.table_name("patient"), pid, defect, "sex_code")
        elif defect == "future_date":
            future = future_typo(when.date())
            if f.his_vendor == "A":
                row["DATE_OF_BIRTH"] = future.isoformat()
            else:
                row["csrq"] = future.strftime("%Y%m%d")
            self.truth.defect(src, w.table_name("patient"), pid, defect, "birth_date")
        w.add("patient", row)
        self.truth.record(src, w.table_name("patient"), pid, r.key, p.tags)
        self.patients.setdefault(key, pid)
        return pid

    def _his_day(self, day: int, date: dt.date) -> None:
        cfg = self.cfg
        rng = _rng(cfg.seed, "his", day)
        n_visits = int(cfg.residents * cfg.visits_per_resident_year / 365 + rng.random())
        chosen = rng.choices(range(len(self.residents)), cum_weights=self.cum_weights, k=n_visits)
        for idx in chosen:
            r = self.residents[idx]
            roll = rng.random()
            if roll < 0.25:
                f = rng.choices(self.county_level, [6, 3, 1][: len(self.county_level)] + [1] * max(0, len(self.county_level) - 3))[0]
                at = f
            else:
                f = self.townships[r.township_index % len(self.townships)]
                at = self.by_code.get(r.village_code, f) if roll > 0.7 else f
            when = dt.datetime.combine(date, dt.time(rng.randint(7, 17), rng.randint(0, 59)))
            self._visit(f, at, idx, r, when, rng)
        for kind, item in self.pending.pop(day, []):
            if kind == "correction":
                self._write_correction(item, date, rng)
            else:
                self._write_discharge(item, date, rng)

    def _visit(self, f: Facility, at: Facility, idx: int, r: Resident, when: dt.datetime, rng: random.Random) -> None:
        w = self.writers[f.code]
        src = self.source_id(f)
        pid = self._patient(f, idx, when, rng)
        if r.hypertension and rng.random() < 0.5:
            dx = ("I10", "原发性高血压")
        elif r.diabetes and rng.random() < 0.5:
            dx = ("E11.9", "2型糖尿病")
        else:
            dx = rng.choice(COMMON_DX)
        others = ";".join(c for c, flag in (("I10", r.hypertension), ("E11.9", r.diabetes)) if flag and c != dx[0])
        inpatient = at.level != "village" and rng.random() < 0.07
        end = when + dt.timedelta(days=rng.randint(3, 10)) if inpatient else None
        dept = rng.choice(["内科", "外科", "儿科", "妇科", "全科", "中医科"]) if at.level != "village" else "全科"
        doctor = rng.choice("陈林黄郑张李") + rng.choice("医生主任")
        if f.his_vendor == "A":
            vid = self.next_id(f"{f.code[-3:]}V")
            row = {"VISIT_ID": vid, "PATIENT_ID": pid, "ORG_CODE": at.code, "VISIT_TYPE": "I" if inpatient else "O",
                   "VISIT_DATE": his.iso(when), "DISCHARGE_DATE": his.iso(end), "DEPT_NAME": dept, "DIAG_CODE": dx[0],
                   "DIAG_NAME": dx[1], "OTHER_DIAG": others or None, "DOCTOR": doctor, "UPDATE_TIME": his.iso(end or when)}
        else:
            vid = self.next_id(f"JZ{f.code[-3:]}")
            row = {"jzid": vid, "hzid": pid, "jgdm": at.code, "jzlx": "住院" if inpatient else "门诊",
                   "jzsj": his.b_time(when), "cysj": his.b_time(end), "ksmc": dept, "zdbm": dx[0], "zdmc": dx[1],
                   "qtzd": others or None, "ysxm": doctor, "gxsj": his.b_time(end or when)}
        if end:
            # admitted today, discharged later: the discharge is an update on that day
            if f.his_vendor == "A":
                row["DISCHARGE_DATE"], row["UPDATE_TIME"] = None, his.iso(when)
            else:
                row["cysj"], row["gxsj"] = None, his.b_time(when)
            day_of_discharge = (end.date() - self.cfg.start_date).days
            self.pending[day_of_discharge].append(("discharge", (f.code, dict(row), end)))
        w.add("visit", row)
        self.truth.record(src, w.table_name("visit"), vid, r.key)
        if at.level == "village":
            return  # village clinics send no samples and do no imaging here
        p_lab = 0.5 if f.level == "county" else 0.35
        if rng.random() < p_lab:
            panels = rng.sample(list(PANELS), k=rng.randint(1, 3))
            if r.diabetes and "glucose" not in panels:
                panels.append("glucose")
            self._labs(f, at, pid, vid, r, when, panels, rng)
        p_exam = 0.12 if f.level == "county" else 0.06
        if rng.random() < p_exam:
            self._exam(f, at, pid, vid, r, when, rng)

    def _labs(self, f, at, pid, vid, r, when, panels, rng) -> None:
        w = self.writers[f.code]
        src = self.source_id(f)
        items = reference.lab_items()
        report_no = self.next_id(f"{f.code[-3:]}R")
        specimen_no = self.next_id(f"{f.code[-3:]}S")
        collected = when + dt.timedelta(minutes=rng.randint(10, 60))
        received = collected + dt.timedelta(minutes=rng.randint(10, 40))
        tested = received + dt.timedelta(minutes=rng.randint(20, 120))
        reported = tested + dt.timedelta(minutes=rng.randint(10, 60))
        codes = [c for p in panels for c in PANELS[p]]
        if rng.random() < 0.03:
            codes.append(None)  # an item not on the county list
        for code in codes:
            rid = self.next_id(f"{f.code[-3:]}L")
            if code is None:
                local, name, unit = his.UNLISTED_LAB[f.his_vendor][0]
                value, text, ref_range, flag = rng.uniform(1, 30), None, "", ""
            else:
                item = items[code]
                local = his.LAB_LOCAL[code][0 if f.his_vendor == "A" else 1]
                name = item.name
                high = (code == "HR-GLU" and r.diabetes) or (code == "HR-HBA1C" and r.diabetes)
                value, text = his.lab_value(item, rng, high=high)
                unit = item.canonical_unit or ""
                ref_range = f"{item.ref_low}-{item.ref_high}" if item.quantitative else "阴性"
                if f.his_vendor == "B" and code in his.B_MG_DL:
                    factor = item.unit_factors["mg/dL"]
                    value = value / factor if value is not None else None
                    unit = "mg/dL"
                    ref_range = f"{item.ref_low / factor:.0f}-{item.ref_high / factor:.0f}"
                flag = ""
                if value is not None and item.ref_high is not None:
                    canon = value * item.unit_factors.get(unit, 1.0)
                    flag = "H" if canon > item.ref_high else ("L" if canon < (item.ref_low or 0) else "N")
            result_text = text if text is not None else f"{value:.2f}"
            defect = self.data_noise.roll(rng)
            quantitative = bool(code and items[code].quantitative)
            if defect in ("implausible_value", "unknown_code") and not quantitative:
                defect = None  # an implausible number or a foreign unit only means something for a measured item
            rep, status = reported, "final"
            if defect == "implausible_value" and code and items[code].quantitative:
                result_text = f"{(items[code].phys_high or 100) * 50 / items[code].unit_factors.get(unit, 1.0):.2f}"
            elif defect == "future_date":
                rep = future_typo(reported)
            elif defect == "unknown_code":
                unit = "mmol/dl"  # a unit no one uses for anything
            row = self._lab_row(f, at, rid, report_no, pid, vid, local, name, result_text, unit, ref_range, flag,
                                specimen_no, collected, received, tested, rep, "final", reported)
            if defect == "blank_required":
                row["REPORT_TIME" if f.his_vendor == "A" else "bgsj"] = None
            if defect:
                column = {"blank_required": "report_at", "implausible_value": "value_numeric",
                          "future_date": "report_at", "unknown_code": "unit"}[defect]
                self.truth.defect(src, w.table_name("lab"), rid, defect, column)
            w.add("lab", row)
            self.truth.record(src, w.table_name("lab"), rid, r.key)
            if f.his_vendor == "B" and rng.random() < self.cfg.noise.duplicate_row:
                w.add("lab", dict(row))  # the vendor's sync job sent the row twice
                self.truth.defect(src, w.table_name("lab"), rid, "duplicate_row", "")
            if quantitative and not defect and rng.random() < 0.005:
                day_offset = (reported.date() - self.cfg.start_date).days + rng.randint(1, 5)
                self.pending[day_offset].append(("correction", (f.code, row, code, unit)))

    def _lab_row(self, f, at, rid, report_no, pid, vid, local, name, result, unit, ref_range, flag, specimen_no,
                 collected, received, tested, reported, status, updated) -> dict:
        if f.his_vendor == "A":
            return {"RESULT_ID": rid, "REPORT_NO": report_no, "PATIENT_ID": pid, "VISIT_ID": vid, "ORG_CODE": at.code,
                    "ITEM_CODE": local, "ITEM_NAME": name, "RESULT": result, "UNITS": unit, "REF_RANGE": ref_range,
                    "ABNORMAL_IND": flag, "SPECIMEN_NO": specimen_no, "SPECIMEN": "血清", "COLLECT_TIME": his.iso(collected),
                    "RECEIVE_TIME": his.iso(received), "TEST_TIME": his.iso(tested), "REPORT_TIME": his.iso(reported),
                    "RESULT_STATUS": "F" if status == "final" else "C", "INSTRUMENT": "BECKMAN AU5800",
                    "UPDATE_TIME": his.iso(updated)}
        arrow = {"H": "↑", "L": "↓"}.get(flag, "")
        return {"jgid": rid, "bgdh": report_no, "hzid": pid, "jzid": vid, "jgdm": at.code, "xmdm": local, "xmmc": name,
                "jg": result, "dw": unit, "ckfw": ref_range, "ycbz": arrow, "bbh": specimen_no, "bblx": "血清",
                "cysj": his.b_time(collected), "jssj": his.b_time(received), "jysj": his.b_time(tested),
                "bgsj": his.b_time(reported), "zt": "审核" if status == "final" else "更正", "yq": "迈瑞BS-240",
                "gxsj": his.b_time(updated)}

    def _write_discharge(self, item, date: dt.date, rng: random.Random) -> None:
        """The discharge is recorded on the day it happens: the visit row changes (A in place, B appended)."""
        code, row, end = item
        f = self.by_code[code]
        updated = dict(row)
        if f.his_vendor == "A":
            updated.update(DISCHARGE_DATE=his.iso(end), UPDATE_TIME=his.iso(end))
        else:
            updated.update(cysj=his.b_time(end), gxsj=his.b_time(end))
        self.writers[code].add("visit", updated)

    def _write_correction(self, item, date: dt.date, rng: random.Random) -> None:
        code, row, item_code, unit = item
        f = self.by_code[code]
        code = item_code
        w = self.writers[f.code]
        amended = dict(row)
        when = dt.datetime.combine(date, dt.time(rng.randint(8, 17), rng.randint(0, 59)))
        value = his.lab_value(reference.lab_items()[code], rng)[0] or 1.0
        value = value / reference.lab_items()[code].unit_factors.get(unit, 1.0)
        if f.his_vendor == "A":
            amended.update(RESULT=f"{value:.2f}", RESULT_STATUS="C", UPDATE_TIME=his.iso(when))
            rid = amended["RESULT_ID"]
        else:
            amended.update(jg=f"{value:.2f}", zt="更正", gxsj=his.b_time(when))
            rid = amended["jgid"]
            # vendor B appends the amended row; the source key repeats with a later update time
        w.add("lab", amended)
        self.truth.defect(self.source_id(f), w.table_name("lab"), rid, "late_correction", "value_numeric")

    def _exam(self, f, at, pid, vid, r, when, rng) -> None:
        w = self.writers[f.code]
        src = self.source_id(f)
        choices = [code for code, (a, b) in his.EXAM_LOCAL.items() if (a if f.his_vendor == "A" else b)]
        code = rng.choice(choices)
        item = reference.exam_items()[code]
        local = his.EXAM_LOCAL[code][0 if f.his_vendor == "A" else 1]
        findings_t, impressions = EXAM_TEXT[item.category]
        findings = findings_t.format(site=item.body_site, hr=rng.randint(58, 96))
        impression = rng.choice(impressions).format(site=item.body_site)
        exam_at = when + dt.timedelta(minutes=rng.randint(20, 180))
        report_at = exam_at + dt.timedelta(minutes=rng.randint(30, 240))
        uid = f"1.2.156.112605.{int(f.code[-3:])}.{self.seq['uid'] + 1}" if item.category in ("CT", "MR", "DR") else None
        self.seq["uid"] += 1
        if f.his_vendor == "A":
            eid = self.next_id(f"{f.code[-3:]}E")
            row = {"EXAM_NO": eid, "PATIENT_ID": pid, "VISIT_ID": vid, "ORG_CODE": at.code, "EXAM_CLASS": item.category,
                   "EXAM_ITEM_CODE": local, "EXAM_ITEM": item.name, "BODY_PART": item.body_site, "DESCRIPTION": findings,
                   "IMPRESSION": impression, "EXAM_DATE_TIME": his.iso(exam_at), "REPORT_DATE_TIME": his.iso(report_at),
                   "STUDY_UID": uid, "DEVICE": {"CT": "GE Revolution", "MR": "Siemens Aera"}.get(item.category, "联影"),
                   "STATUS": "F", "UPDATE_TIME": his.iso(report_at)}
        else:
            eid = self.next_id(f"JC{f.code[-3:]}")
            row = {"bgid": eid, "hzid": pid, "jzid": vid, "jgdm": at.code, "jclx": his.B_EXAM_CLASS[item.category],
                   "xmdm": local, "xmmc": item.name, "bw": item.body_site, "jcsj": findings, "jcts": impression,
                   "jcrq": his.b_time(exam_at), "bgrq": his.b_time(report_at), "yxh": uid, "zt": "审核",
                   "gxsj": his.b_time(report_at)}
        w.add("exam", row)
        self.truth.record(src, w.table_name("exam"), eid, r.key)


def generate(out: Path, cfg: CountyConfig) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return County(out, cfg).generate()


def load_config(out: Path) -> CountyConfig:
    """The settings a county was generated with (from its county.json)."""
    from countyhealth.simulate.noise import NoiseRates

    manifest = json.loads((out / "county.json").read_text())
    cfg = dict(manifest["config"])
    cfg["start_date"] = dt.date.fromisoformat(cfg["start_date"])
    cfg["noise"] = NoiseRates(**manifest["noise"])
    return CountyConfig(**cfg)


def normalise_zip(path: Path) -> None:
    """Rewrite an XLSX (a zip) with fixed timestamps so the same content gives the same bytes."""
    import re

    with zipfile.ZipFile(path) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    # openpyxl stamps the save time as "modified": use the document's own "created" instead
    for n, (name, data) in enumerate(entries):
        if name == "docProps/core.xml":
            text = data.decode()
            created = re.search(r"<dcterms:created[^>]*>([^<]*)</dcterms:created>", text)
            if created:
                text = re.sub(r"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rf"\g<1>{created.group(1)}\g<2>", text)
            entries[n] = (name, text.encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
