"""The indicator mart on a simulated county after a real night (extract → validate → load → EMPI → shared
results → indicators), checked against the same definitions computed here in plain Python straight from the
warehouse's rows: every county, township and facility value within 0.1 percentage point, counts exact."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
import sqlalchemy as sa

from countyhealth import identity, indicators, pipeline, results
from countyhealth.results import config as results_config
from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse
from county_env import make_env

HTN = ("I10", "I11", "I12", "I13", "I15")
DM = ("E10", "E11", "E12", "E13", "E14")
TOLERANCE = 0.001  # 0.1 percentage point


@pytest.fixture(scope="module")
def template_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    # ten months, so the rolling year holds four follow-ups and contracts come up for renewal
    generate(out, CountyConfig(seed=11, residents=600, days=300, start_date=dt.date(2025, 12, 1), county_hospitals=2,
                               townships=2, villages_per_township=3))
    return out


@pytest.fixture
def county_wh(tmp_path, template_county, monkeypatch):
    env = make_env(tmp_path, template_county, monkeypatch)
    try:
        wh = Warehouse()
        summary = pipeline.run()
        assert summary.failed == {} and summary.held == []
        assert summary.indicators is not None and summary.indicators.rows > 0  # the night refreshed them
        # with the labs' EQA results loaded, results are recognisable and repeats can be avoidable
        results_config.load_eqa(wh, env.county / "registry" / "eqa.csv")
        results.refresh(wh, publish_snapshot=False)
        indicators.refresh(wh)
        yield wh
    finally:
        env.stop()


def _rows(wh, sql):
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def _month(d) -> dt.date:
    return dt.date(d.year, d.month, 1)


def _month_end(m: dt.date) -> dt.date:
    nxt = dt.date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def _add_months(m: dt.date, n: int) -> dt.date:
    y, mm = divmod(m.year * 12 + m.month - 1 + n, 12)
    return dt.date(y, mm + 1, 1)


class Reference:
    """The indicators recomputed in Python from the warehouse rows."""

    def __init__(self, wh):
        self.facility = {}
        for f in _rows(wh, "SELECT facility_code, name, level, parent_code FROM facility"):
            self.facility.setdefault(f["facility_code"], f)
        self.link = {(r["source_id"], r["source_record_id"]): r["person_id"]
                     for r in _rows(wh, "SELECT source_id, source_record_id, person_id FROM person_link")}
        self.birth = {r["person_id"]: r["birth_date"] for r in _rows(wh, "SELECT person_id, birth_date FROM golden_person")}
        homes: dict[str, list] = defaultdict(list)
        for p in _rows(wh, "SELECT * FROM person"):
            pid = self.link.get((p["source_id"], p["source_record_id"]))
            level = self.facility.get(p["facility_code"], {}).get("level")
            if pid and p["health_record_number"] and level in ("township", "village"):
                homes[pid].append(p)
        self.home = {}
        for pid, recs in homes.items():
            newest = max((r["source_updated_at"] for r in recs if r["source_updated_at"]), default=None)
            recs = [r for r in recs if r["source_updated_at"] == newest]
            self.home[pid] = min(recs, key=lambda r: (r["source_id"], r["source_record_id"]))["facility_code"]
        self.encounters = _rows(wh, "SELECT * FROM encounter")
        self.contracts = _rows(wh, "SELECT * FROM contract")
        self.followups = _rows(wh, "SELECT * FROM chronic_followup")
        self.labs = _rows(wh, "SELECT * FROM shared_lab_result")
        self.exams = _rows(wh, "SELECT * FROM shared_exam_report")
        self.prices = {r["item_code"]: r["price_yuan"] for r in _rows(wh, "SELECT * FROM indicator_price")}

    def township(self, code):
        f = self.facility.get(code)
        if not f:
            return None
        return code if f["level"] == "township" else (f["parent_code"] if f["level"] == "village" else None)

    # ---- 基层诊疗率 ------------------------------------------------------------------------------------
    def primary_care(self) -> dict:
        out: dict = defaultdict(lambda: [0, 0])
        for e in self.encounters:
            if e["encounter_type"] not in ("outpatient", "emergency") or e["start_at"] is None:
                continue
            m = _month(e["start_at"])
            primary = self.facility.get(e["facility_code"], {}).get("level") in ("township", "village")
            keys = [("county", "*")]
            pid = self.link.get((e["source_id"], e["person_source_record_id"]))
            if pid in self.home:
                keys.append(("township", self.township(self.home[pid])))
            for scope, unit in keys:
                out[(m, scope, unit)][0] += primary
                out[(m, scope, unit)][1] += 1
        return out

    # ---- 签约 ----------------------------------------------------------------------------------------------
    def conditions(self) -> dict:
        since: dict = {}

        def note(pid, condition, day):
            if pid and day and (since.get((pid, condition)) is None or day < since[(pid, condition)]):
                since[(pid, condition)] = day

        for f in self.followups:
            if f["condition"] in ("hypertension", "diabetes"):
                note(self.link.get((f["source_id"], f["person_source_record_id"])), f["condition"], f["visit_date"])
        for e in self.encounters:
            if e["start_at"] is None:
                continue
            codes = [(e["diagnosis_code"] or "")[:3]]
            others = [c.strip() for c in (e["other_diagnosis_codes"] or "").split(";") if c.strip()]
            pid = self.link.get((e["source_id"], e["person_source_record_id"]))
            for condition, known in (("hypertension", HTN), ("diabetes", DM)):
                if codes[0] in known or any(o.startswith(k) for o in others for k in known):
                    note(pid, condition, e["start_at"].date())
        return since

    def signing(self, months) -> dict:
        terms = defaultdict(list)
        ended = defaultdict(list)
        for c in self.contracts:
            if c["event"] == "terminate" or c["status"] == "terminated":
                if c["termination_date"]:
                    ended[(c["source_id"], c["contract_number"])].append(c["termination_date"])
        for c in self.contracts:
            pid = self.link.get((c["source_id"], c["person_source_record_id"]))
            if (pid is None or (c["event"] or "sign") not in ("sign", "renew") or c["status"] == "terminated"
                    or None in (c["sign_date"], c["begin_date"], c["end_date"])):
                continue
            stop = min((d for d in ended[(c["source_id"], c["contract_number"])] if d >= c["sign_date"]), default=None)
            terms[pid].append((c["sign_date"], c["begin_date"], c["end_date"], stop))
        since = self.conditions()
        out: dict = defaultdict(lambda: [0, 0])
        for m in months:
            end = _month_end(m)
            try:
                born_by = end.replace(year=end.year - 65)
            except ValueError:
                born_by = end.replace(year=end.year - 65, day=28)
            for pid, home in self.home.items():
                signed = any(s <= end and b <= end <= e and (t is None or t > end) for s, b, e, t in terms[pid])
                groups = ["fd_signing_coverage"]
                if self.birth.get(pid) and self.birth[pid] <= born_by:
                    groups.append("fd_signing_coverage_elderly")
                for condition in ("hypertension", "diabetes"):
                    if since.get((pid, condition)) and since[(pid, condition)] <= end:
                        groups.append(f"fd_signing_coverage_{condition}")
                for g in groups:
                    for scope, unit in (("county", "*"), ("township", self.township(home)), ("facility", home)):
                        out[(g, m, scope, unit)][0] += signed
                        out[(g, m, scope, unit)][1] += 1
        return out

    def contract_events(self) -> dict:
        out: dict = defaultdict(int)
        for c in self.contracts:
            if c["event"] == "terminate" or c["status"] == "terminated":
                name, day, item = "fd_terminations", c["termination_date"], c["termination_reason"] or "?"
            else:
                name, day, item = ("fd_renewals" if c["event"] == "renew" else "fd_new_signings"), c["sign_date"], None
            if day is None:
                continue
            m = _month(day)
            out[(name, m, "county", "*", "")] += 1
            if c["facility_code"]:
                out[(name, m, "facility", c["facility_code"], "")] += 1
            if item:
                out[(name, m, "county", "*", item)] += 1
        return out

    # ---- 规范管理率 / 控制率 -------------------------------------------------------------------------------
    def chronic(self, months) -> dict:
        by_patient = defaultdict(list)
        for f in self.followups:
            pid = self.link.get((f["source_id"], f["person_source_record_id"]))
            if pid and f["condition"] in ("hypertension", "diabetes") and f["visit_date"]:
                by_patient[(pid, f["condition"])].append(f)
        out: dict = defaultdict(lambda: [0, 0])
        for m in months:
            first, end = _add_months(m, -11), _month_end(m)
            for (pid, condition), fus in by_patient.items():
                window = [f for f in fus if first <= f["visit_date"] <= end]
                if not window:
                    continue
                order = lambda f: (f["visit_date"], f["source_record_id"])  # noqa: E731
                last = max(window, key=order)
                days = {f["visit_date"] for f in window if f["visit_mode"] in ("1", "2")}
                if condition == "hypertension":
                    bp = [f for f in window if f["sbp"] is not None and f["dbp"] is not None]
                    ok = bool(bp) and max(bp, key=order)["sbp"] < 140 and max(bp, key=order)["dbp"] < 90
                    names = ("htn_standard_management", "htn_bp_control")
                else:
                    g = [f for f in window if f["fasting_glucose"] is not None]
                    ok = False
                    if g:
                        lg = max(g, key=order)
                        mmol = lg["fasting_glucose"] * (0.05551 if lg["glucose_unit"] == "mg/dL" else 1)
                        ok = mmol < 7.0
                    names = ("dm_standard_management", "dm_glucose_control")
                fac = last["facility_code"]
                for name, hit in zip(names, (len(days) >= 4, ok)):
                    for scope, unit in (("county", "*"), ("township", self.township(fac)), ("facility", fac)):
                        if unit is not None:
                            out[(name, m, scope, unit)][0] += hit
                            out[(name, m, scope, unit)][1] += 1
        return out

    # ---- 互认 ----------------------------------------------------------------------------------------------
    def repeats(self) -> dict:
        out: dict = defaultdict(lambda: [0, 0, 0.0])
        for rows, taken_col in ((self.labs, "collected_at"), (self.exams, "exam_at")):
            prior = defaultdict(list)
            for p in rows:
                if p["static_reason"] is None and p["item_code"]:
                    prior[(p["person_id"], p["item_code"])].append(p)
            for r in rows:
                if not (r["item_code"] and r["is_final"] and r["facility_code"]):
                    continue
                taken = r[taken_col] or r["report_at"]
                avoidable = any(p["facility_code"] != r["facility_code"] and p["report_at"] < taken <= p["valid_until"]
                                for p in prior[(r["person_id"], r["item_code"])])
                m = _month(taken)
                for key in ((m, "facility", r["facility_code"], r["item_code"]), (m, "facility", r["facility_code"], ""),
                            (m, "county", "*", r["item_code"]), (m, "county", "*", "")):
                    out[key][0] += avoidable
                    out[key][1] += 1
                    out[key][2] += self.prices.get(r["item_code"], 0) if avoidable else 0
        return out


def _mart(wh, *names):
    rows = _rows(wh, "SELECT * FROM indicator_value")
    return [r for r in rows if r["indicator"] in names]


def _close(got: dict, want: tuple, key) -> None:
    num, den = want[0], want[1]
    assert got["denominator"] == den, (key, got, want)
    if den:
        assert abs(got["rate"] - num / den) <= TOLERANCE, (key, got["rate"], num / den)
    assert abs(got["numerator"] - num) <= TOLERANCE * den, (key, got, want)


def test_indicators_match_a_plain_python_reference_on_a_simulated_county(county_wh):
    wh = county_wh
    ref = Reference(wh)
    months = sorted({r["month_start"] for r in _rows(wh, "SELECT DISTINCT month_start FROM indicator_value")})
    last_visit = max(e["start_at"] for e in ref.encounters)
    assert months[-1] == _month(last_visit) and len(months) >= 10

    # 基层诊疗率: every county and township value
    want = ref.primary_care()
    got = {(r["month_start"], r["scope"], r["unit_code"]): r for r in _mart(wh, "primary_care_visit_share")
           if r["scope"] != "facility"}
    assert set(got) == set(want)
    for key, value in want.items():
        _close(got[key], value, key)
    county = [got[k] for k in got if k[1] == "county"]
    assert 0.5 < sum(r["numerator"] for r in county) / sum(r["denominator"] for r in county) < 0.9

    # signing coverage: overall and key populations, county, township and facility
    want = ref.signing(months)
    names = ("fd_signing_coverage", "fd_signing_coverage_elderly", "fd_signing_coverage_hypertension",
             "fd_signing_coverage_diabetes")
    got = {(r["indicator"], r["month_start"], r["scope"], r["unit_code"]): r for r in _mart(wh, *names)}
    assert set(got) == set(want)
    for key, value in want.items():
        _close(got[key], value, key)

    # contract events: exact counts
    want = ref.contract_events()
    got = {(r["indicator"], r["month_start"], r["scope"], r["unit_code"], r["item_code"]): r["numerator"]
           for r in _mart(wh, "fd_new_signings", "fd_renewals", "fd_terminations")}
    assert {k: v for k, v in want.items() if k[1] in months} == got
    assert sum(v for k, v in got.items() if k[0] == "fd_renewals") > 0

    # 规范管理率 and 控制率
    want = ref.chronic(months)
    names = ("htn_standard_management", "htn_bp_control", "dm_standard_management", "dm_glucose_control")
    got = {(r["indicator"], r["month_start"], r["scope"], r["unit_code"]): r for r in _mart(wh, *names)}
    assert set(got) == set(want)
    for key, value in want.items():
        _close(got[key], value, key)
    assert any(r["numerator"] > 0 for k, r in got.items() if k[0] == "htn_standard_management")

    # 互认: avoidable repeats per facility and item, with their cost
    want = ref.repeats()
    got = {(r["month_start"], r["scope"], r["unit_code"], r["item_code"]): r
           for r in _mart(wh, "recognition_avoidable_repeats")}
    assert set(got) == {k for k in want if k[0] in months}
    for key, (num, den, cost) in want.items():
        if key[0] in months:
            assert (got[key]["numerator"], got[key]["denominator"]) == (num, den), key
            assert got[key]["amount_yuan"] == pytest.approx(cost), key
    assert sum(v[0] for k, v in want.items() if k[1:] == ("county", "*", "")) > 0
