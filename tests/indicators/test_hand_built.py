"""Each indicator on a handful of rows whose answer is worked out by hand, on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from countyhealth import indicators
from countyhealth.warehouse import Warehouse
from indicator_world import World, values

D, T = dt.date, dt.datetime
TODAY = D(2026, 6, 30)


@pytest.fixture
def wh(warehouse_url):
    return Warehouse(warehouse_url)


def test_primary_care_visit_share_county_township_and_facility(wh):
    w = World()
    a = w.person("PA", birth=D(1980, 1, 1), home="W1")
    b = w.person("PB", birth=D(1980, 1, 1), home="W2")
    w.visit(a, "W1", T(2026, 3, 2, 9))
    w.visit(a, "W1", T(2026, 3, 9, 9))
    w.visit(a, "H1", T(2026, 3, 5, 9))
    w.visit(a, "W1", T(2026, 3, 6, 9), "inpatient")  # not an outpatient/emergency visit
    w.visit(a, "H1", T(2026, 3, 7, 9), "physical_exam")  # nor is a physical exam
    w.visit(b, "C1", T(2026, 3, 3, 9))  # a village clinic is primary care
    w.visit(b, "H1", T(2026, 3, 4, 9))
    w.visit(b, "H1", T(2026, 3, 31, 23, 30), "emergency")
    w.visit(None, "W1", T(2026, 3, 8, 9))  # a patient the EMPI has not placed: county-wide only
    w.visit(a, "H1", T(2026, 4, 1, 0, 5))  # next month
    w.build(wh)
    indicators.refresh(wh, today=TODAY)
    county = values(wh, "primary_care_visit_share")
    assert county["2026-03"][:2] == (4, 7) and county["2026-03"][2] == pytest.approx(4 / 7)
    assert county["2026-04"][:3] == (0, 1, 0)
    assert values(wh, "primary_care_visit_share", scope="township", unit="W1")["2026-03"][:2] == (2, 3)
    # the township of the residents, wherever they went: PB's visit to a village clinic of 甲镇 is 乙镇's
    assert values(wh, "primary_care_visit_share", scope="township", unit="W2")["2026-03"][:2] == (1, 3)
    # a facility's row is its share of the county's visits: the primary-care rows add up to the county rate
    share = {f: values(wh, "primary_care_visit_share", scope="facility", unit=f)["2026-03"][:2]
             for f in ("W1", "C1", "H1")}
    assert share == {"W1": (3, 7), "C1": (1, 7), "H1": (3, 7)}


def _signing_world() -> World:
    w = World()
    a = w.person("PA", birth=D(1950, 5, 1), home="W1")  # elderly; hypertension from a diagnosis
    b = w.person("PB", birth=D(1990, 5, 1), home="W2")  # diabetes from a follow-up
    c = w.person("PC", birth=D(1961, 4, 15), home="W1")  # turns 65 on 2026-04-15; never signs
    w.visit(c, "W1", T(2026, 6, 2, 9))  # months run to the last month with data: June
    d = w.person("PD", birth=D(1950, 1, 1))  # signed, but no health record: in no denominator
    w.visit(a, "H1", T(2025, 11, 3, 9), dx="K29.7", other_dx="E78.5;I10")
    w.followup(b, "diabetes", D(2026, 2, 1), glucose=6.0, facility="W2")
    w.contract(a, "K-A", "sign", D(2025, 6, 1), D(2025, 6, 1), D(2026, 5, 31))
    w.contract(a, "K-A", "renew", D(2026, 5, 10), D(2026, 6, 1), D(2027, 5, 31))  # renewed before expiry
    w.contract(b, "K-B", "sign", D(2026, 1, 10), D(2026, 1, 10), D(2027, 1, 9), facility="W2")
    w.contract(b, "K-B", "terminate", D(2026, 1, 10), D(2026, 1, 10), D(2027, 1, 9), facility="W2",
               termination=(D(2026, 3, 20), "4"))
    w.contract(d, "K-D", "sign", D(2026, 3, 1), D(2026, 3, 1), D(2027, 2, 28))
    return w


def test_family_doctor_signing_coverage_and_key_populations(wh):
    _signing_world().build(wh)
    indicators.refresh(wh, today=TODAY)
    cov = values(wh, "fd_signing_coverage")
    assert max(cov) == "2026-06"  # PA's renewal carries the contract on past 31 May
    assert {m: cov[m][:2] for m in ("2026-01", "2026-02", "2026-03", "2026-05", "2026-06")} == {
        "2026-01": (2, 3), "2026-02": (2, 3), "2026-03": (1, 3), "2026-05": (1, 3), "2026-06": (1, 3)}
    elderly = values(wh, "fd_signing_coverage_elderly")
    assert elderly["2026-03"][:2] == (1, 1) and elderly["2026-04"][:2] == (1, 2)  # PC is 65 on 15 April
    htn = values(wh, "fd_signing_coverage_hypertension")
    assert "2025-10" not in htn or htn["2025-10"][1] == 0
    assert htn["2025-11"][:2] == (1, 1)  # known from the further diagnosis I10 of November's visit
    dm = values(wh, "fd_signing_coverage_diabetes")
    assert dm["2026-02"][:2] == (1, 1) and dm["2026-03"][:2] == (0, 1)  # PB terminated on 20 March
    # per township (the residents' health-record township)
    assert values(wh, "fd_signing_coverage", scope="township", unit="W1")["2026-03"][:2] == (1, 2)
    assert values(wh, "fd_signing_coverage", scope="township", unit="W2")["2026-02"][:2] == (1, 1)
    assert values(wh, "fd_signing_coverage", scope="facility", unit="W2")["2026-03"][:2] == (0, 1)


def test_contract_events_signings_renewals_terminations_by_reason(wh):
    _signing_world().build(wh)
    indicators.refresh(wh, today=TODAY)
    assert values(wh, "fd_new_signings")["2026-03"][:2] == (1, None)  # PD's
    assert values(wh, "fd_new_signings", scope="facility", unit="W2")["2026-01"][0] == 1
    assert values(wh, "fd_renewals")["2026-05"][0] == 1
    assert values(wh, "fd_terminations")["2026-03"][0] == 1
    assert values(wh, "fd_terminations", item="4")["2026-03"][0] == 1  # 居民解约


def test_chronic_standard_management_and_control(wh):
    w = World()
    h1 = w.person("H1P", birth=D(1955, 1, 1), home="W1")
    h2 = w.person("H2P", birth=D(1960, 1, 1), home="W2")
    for on, mode in ((D(2025, 4, 10), "1"), (D(2025, 7, 10), "1"), (D(2025, 10, 10), "3"), (D(2026, 1, 10), "2")):
        w.followup(h1, "hypertension", on, mode, bp=(132, 82))
    w.followup(h1, "hypertension", D(2026, 3, 5), "1", bp=(150, 85))  # four face-to-face, last BP too high
    w.visit(h1, "W1", T(2026, 4, 20, 9))  # data in April: the months run to April
    w.followup(h2, "hypertension", D(2025, 12, 1), "2", bp=(130, 80), facility="W2")
    w.followup(h2, "hypertension", D(2026, 1, 15), "1", bp=(130, 80), facility="W2")
    w.followup(h2, "hypertension", D(2026, 1, 15), "1", bp=(128, 80), facility="W2")  # same day: one visit
    w.followup(h2, "hypertension", D(2026, 3, 1), "3", bp=(135, 85), facility="W2")  # by phone: still the last BP
    d1 = w.person("D1P", birth=D(1955, 1, 1), home="W1")
    d2 = w.person("D2P", birth=D(1955, 1, 1), home="W1")
    d3 = w.person("D3P", birth=D(1955, 1, 1), home="W1")
    w.followup(d1, "diabetes", D(2026, 3, 10), glucose=126, unit="mg/dL")  # 6.99 mmol/L: controlled
    w.followup(d2, "diabetes", D(2026, 2, 10), glucose=6.5)
    w.followup(d2, "diabetes", D(2026, 3, 12), glucose=None)  # no glucose this time: the last measured one counts
    w.followup(d3, "diabetes", D(2026, 3, 1), glucose=7.0)  # 7.0 is not < 7.0
    w.build(wh)
    indicators.refresh(wh, today=TODAY)
    assert values(wh, "htn_standard_management")["2026-03"][:2] == (1, 2)
    assert values(wh, "htn_bp_control")["2026-03"][:2] == (1, 2)
    # a rolling year: in April the April 2025 visit has left the window, H1P has three face-to-face
    assert values(wh, "htn_standard_management")["2026-04"][:2] == (0, 2)
    assert values(wh, "htn_standard_management", scope="facility", unit="W1")["2026-03"][:2] == (1, 1)
    assert values(wh, "htn_bp_control", scope="township", unit="W2")["2026-03"][:2] == (1, 1)
    assert values(wh, "dm_glucose_control")["2026-03"][:2] == (2, 3)
    assert values(wh, "dm_standard_management")["2026-03"][:2] == (0, 3)
    assert values(wh, "dm_glucose_control")["2026-02"][:2] == (1, 1)


def test_recognition_avoidable_repeats_count_and_cost(wh):
    w = World()
    p = w.person("PX", birth=D(1970, 1, 1), home="W1")
    w.shared_result("lab", p, "H1", "HR-GLU", T(2026, 3, 2, 9), validity_days=30)
    w.shared_result("lab", p, "W1", "HR-GLU", T(2026, 3, 10, 9), validity_days=30, eligible=False)  # avoidable
    # H1 again: its own earlier result is no 互认 case, and W1's was not recognisable (no EQA): not avoidable
    w.shared_result("lab", p, "H1", "HR-GLU", T(2026, 3, 15, 9), validity_days=30)
    w.shared_result("lab", p, "W1", "HR-GLU", T(2026, 4, 5, 9), validity_days=30, eligible=False)
    w.shared_result("lab", p, "H1", "HR-K", T(2026, 3, 2, 9), validity_days=7)
    w.shared_result("lab", p, "W1", "HR-K", T(2026, 3, 20, 9), validity_days=7)  # past the 7-day window
    w.shared_result("lab", p, "W1", "HR-ALT", T(2026, 3, 3, 9), validity_days=30, eligible=False)
    w.shared_result("lab", p, "H1", "HR-ALT", T(2026, 3, 5, 9), validity_days=30)  # the earlier one had no EQA
    w.shared_result("lab", p, "W1", "HR-CRP", T(2026, 3, 4, 9), validity_days=7, status="cancelled")
    w.shared_result("exam", p, "H1", "HR-CT-HEAD", T(2026, 3, 1, 9), validity_days=90)
    w.shared_result("exam", p, "W1", "HR-CT-HEAD", T(2026, 3, 20, 9), validity_days=90)  # avoidable
    w.build(wh)
    indicators.refresh(wh, today=TODAY)
    name = "recognition_avoidable_repeats"
    assert values(wh, name, scope="facility", unit="W1", item="HR-GLU")["2026-03"] == (1, 1, 1.0, 5.0)
    # 5 April: H1's 15 March result is recognisable until 14 April — avoidable too
    assert values(wh, name, scope="facility", unit="W1", item="HR-GLU")["2026-04"] == (1, 1, 1.0, 5.0)
    assert values(wh, name, scope="facility", unit="W1", item="HR-K")["2026-03"][:2] == (0, 1)
    assert values(wh, name, scope="facility", unit="H1", item="HR-GLU")["2026-03"][:2] == (0, 2)
    assert values(wh, name, scope="facility", unit="H1", item="HR-ALT")["2026-03"][:2] == (0, 1)
    assert values(wh, name, scope="facility", unit="W1", item="HR-CT-HEAD")["2026-03"] == (1, 1, 1.0, 180.0)
    # the cancelled CRP is no test; W1 did GLU, K, ALT and a CT in March
    assert values(wh, name, scope="facility", unit="W1")["2026-03"] == (2, 4, 0.5, 185.0)
    assert values(wh, name)["2026-03"][:2] == (2, 9) and values(wh, name)["2026-03"][3] == 185.0
    assert values(wh, name, item="HR-GLU")["2026-03"][:2] == (1, 3)


def test_prices_come_from_the_config_file(wh, tmp_path, monkeypatch):
    w = World()
    p = w.person("PX", birth=D(1970, 1, 1), home="W1")
    w.shared_result("lab", p, "H1", "HR-GLU", T(2026, 3, 2, 9), validity_days=30)
    w.shared_result("lab", p, "W1", "HR-GLU", T(2026, 3, 10, 9), validity_days=30)
    w.shared_result("exam", p, "H1", "HR-ECG", T(2026, 3, 1, 9), validity_days=14)
    w.shared_result("exam", p, "W1", "HR-ECG", T(2026, 3, 2, 9), validity_days=14)
    w.build(wh)
    (tmp_path / "prices.csv").write_text("item_code,name,price_yuan\nHR-GLU,空腹血糖,7.5\n", encoding="utf-8")
    indicators.refresh(wh, today=TODAY, prices=tmp_path / "prices.csv")
    name = "recognition_avoidable_repeats"
    assert values(wh, name, scope="facility", unit="W1", item="HR-GLU")["2026-03"][3] == 7.5
    assert values(wh, name, scope="facility", unit="W1", item="HR-ECG")["2026-03"][:2] == (1, 1)
    assert values(wh, name, scope="facility", unit="W1", item="HR-ECG")["2026-03"][3] == 0  # no price: counted, not costed
    (tmp_path / "bad.csv").write_text("item_code,name,price_yuan\nHR-GLU,空腹血糖,五元\n", encoding="utf-8")
    with pytest.raises(indicators.PriceListError, match="line 2: price_yuan of HR-GLU is not a number"):
        indicators.refresh(wh, today=TODAY, prices=tmp_path / "bad.csv")
