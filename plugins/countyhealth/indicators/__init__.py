"""County-community monitoring indicators (紧密型县域医共体监测指标), computed every night from the warehouse.

:func:`refresh` rebuilds ``indicator_value`` in one transaction, after the shared results (the 互认 indicator
reads ``shared_lab_result`` / ``shared_exam_report``): one row per indicator × calendar month × scope unit
(the county ``*``, a township centre, a facility; × item for 互认), with the numerator and the denominator
stored beside the rate. The SQL is in ``sql/indicators/NN_*.sql``, portable between DuckDB and PostgreSQL; a
file of the same name under ``sql/<dialect>/indicators/`` replaces it on that engine where the two differ.
Definitions, sources and policy references: docs/indicators.md. The prices the avoidable repeats are costed
with: ``config/indicator_prices.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from countyhealth import settings
from countyhealth.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Indicator:
    name: str
    title: str  # Chinese name as the monitoring tables print it
    doc: str  # numerator / denominator in one line
    kind: str = "rate"  # rate | count


INDICATORS: dict[str, Indicator] = {i.name: i for i in [
    Indicator("primary_care_visit_share", "基层诊疗率（基层医疗卫生机构诊疗量占比）",
              "outpatient+emergency visits at township centres and village clinics / all such visits"),
    Indicator("fd_signing_coverage", "家庭医生签约服务覆盖率",
              "residents with a contract in force on the month's last day / residents with a health record"),
    Indicator("fd_signing_coverage_elderly", "重点人群签约率：65岁及以上老年人",
              "signed residents aged 65+ / residents aged 65+ (on the month's last day)"),
    Indicator("fd_signing_coverage_hypertension", "重点人群签约率：高血压患者",
              "signed residents with hypertension / residents with hypertension (follow-up or I10-I15 diagnosis)"),
    Indicator("fd_signing_coverage_diabetes", "重点人群签约率：糖尿病患者",
              "signed residents with diabetes / residents with diabetes (follow-up or E10-E14 diagnosis)"),
    Indicator("fd_new_signings", "新签约数", "signing events in the month, at the signing facility", "count"),
    Indicator("fd_renewals", "续约数", "renewal events in the month, at the signing facility", "count"),
    Indicator("fd_terminations", "解约数", "terminations in the month (item: 解约原因 code), at the signing facility",
              "count"),
    Indicator("htn_standard_management", "高血压患者规范管理率",
              "managed hypertension patients with >= 4 face-to-face follow-ups in the 12 months / managed patients"),
    Indicator("htn_bp_control", "管理人群血压控制率",
              "patients whose last BP in the 12 months was < 140/90 mmHg / managed hypertension patients"),
    Indicator("dm_standard_management", "2型糖尿病患者规范管理率",
              "managed diabetes patients with >= 4 face-to-face follow-ups in the 12 months / managed patients"),
    Indicator("dm_glucose_control", "管理人群血糖控制率",
              "patients whose last fasting glucose in the 12 months was < 7.0 mmol/L / managed diabetes patients"),
    Indicator("recognition_avoidable_repeats", "互认：可避免的重复检查检验",
              "tests repeated within the validity window of another member's recognisable result / all tests "
              "(amount_yuan: their cost)"),
]}

# ICD-10 three-character categories that mark a condition in a visit's diagnoses
DX_CODES = {"hypertension": ("I10", "I11", "I12", "I13", "I15"),
            "diabetes": ("E10", "E11", "E12", "E13", "E14")}
MAX_MONTHS = 36  # months kept: the newest MAX_MONTHS months with data
_STATEMENT_SPLIT = re.compile(r";\s*(?:\n|$)")


@dataclass
class RefreshSummary:
    months: list[str] = field(default_factory=list)
    rows: int = 0
    per_indicator: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class PriceListError(UserError, ValueError):
    pass


def price_list(path: Path | None = None) -> pa.Table:
    """``config/indicator_prices.csv`` (item_code, name, price_yuan[, notes]) as the indicator_price table."""
    path = path or settings.config_dir() / "indicator_prices.csv"
    if not path.exists():
        raise PriceListError(f"{path.name} not found in the config folder: copy config/indicator_prices.csv from "
                             "the repository (the prices avoidable repeats are costed with)")
    codes, names, prices = [], [], []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            code = (row.get("item_code") or "").strip()
            if not code:
                continue
            try:
                price = float(row.get("price_yuan") or "")
            except ValueError:
                raise PriceListError(f"{path.name} line {n}: price_yuan of {code} is not a number; write it in yuan, "
                                     "e.g. 25 or 12.5") from None
            if price < 0 or code in codes:
                raise PriceListError(f"{path.name} line {n}: {code} " + ("is listed twice; keep one row"
                                                                         if code in codes else "has a negative price"))
            codes.append(code)
            names.append((row.get("name") or "").strip() or None)
            prices.append(price)
    return pa.table({"item_code": pa.array(codes, pa.string()), "name": pa.array(names, pa.string()),
                     "price_yuan": pa.array(prices, pa.float64())})


def _month_add(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return dt.date(y, m + 1, 1)


def _years_before(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def months_table(first: dt.date, last: dt.date) -> pa.Table:
    """Calendar months from ``first``'s to ``last``'s: start, end, the start of the 12-month window ending with
    it, and the latest birth date of someone 65 or older on its last day."""
    starts, ends, year_starts, born = [], [], [], []
    m = dt.date(first.year, first.month, 1)
    while m <= last:
        end = _month_add(m, 1) - dt.timedelta(days=1)
        starts.append(m), ends.append(end), year_starts.append(_month_add(m, -11)), born.append(_years_before(end, 65))
        m = _month_add(m, 1)
    return pa.table({"month_start": pa.array(starts, pa.date32()), "month_end": pa.array(ends, pa.date32()),
                     "year_start": pa.array(year_starts, pa.date32()), "born_by_65": pa.array(born, pa.date32())})


def data_months(conn, *, today: dt.date | None = None) -> tuple[dt.date, dt.date] | None:
    """The first and last month with data (visits, follow-ups, contract events, shared results), at most
    MAX_MONTHS months, none after ``today``'s."""
    today = today or dt.date.today()
    row = conn.execute(sa.text(
        "SELECT min(d), max(d) FROM ("
        " SELECT CAST(start_at AS DATE) AS d FROM encounter UNION ALL"
        " SELECT visit_date FROM chronic_followup UNION ALL"
        " SELECT sign_date FROM contract UNION ALL"
        " SELECT CAST(report_at AS DATE) FROM shared_lab_result UNION ALL"
        " SELECT CAST(report_at AS DATE) FROM shared_exam_report) x WHERE d <= :today"), {"today": today}).fetchall()[0]
    if row[0] is None:
        return None
    first, last = row[0], row[1]
    first = max(first, _month_add(dt.date(last.year, last.month, 1), -(MAX_MONTHS - 1)))
    return first, last


def sql_files(dialect: str, sql_dir: Path | None = None) -> list[Path]:
    """The mart SQL in order; ``sql/<dialect>/indicators/NAME.sql`` replaces ``sql/indicators/NAME.sql``."""
    root = sql_dir or settings.sql_dir()
    files = {p.name: p for p in sorted((root / "indicators").glob("*.sql"))}
    files.update({p.name: p for p in sorted((root / dialect / "indicators").glob("*.sql"))})
    return [files[n] for n in sorted(files)]


def statements(path: Path) -> list[str]:
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in _STATEMENT_SPLIT.split(text) if s.strip()]


TEMP_TABLES = ("ind_month", "ind_dx_code", "ind_facility", "ind_home", "ind_condition", "ind_visit", "ind_term",
               "ind_signed", "ind_population", "ind_contract_event", "ind_followup", "ind_managed", "ind_last",
               "ind_patient", "ind_chronic", "ind_test", "ind_test_month")


def _drop_temp(conn) -> None:
    for t in TEMP_TABLES:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")


def refresh(wh, *, today: dt.date | None = None, prices: Path | None = None) -> RefreshSummary:
    """Rebuild the indicator mart from the warehouse (one transaction). Run after ``results.refresh``."""
    started = time.monotonic()
    summary = RefreshSummary()
    price_table = price_list(prices)
    wh.migrate()
    now = dt.datetime.now().replace(microsecond=0)
    with wh.begin() as conn:
        conn.execute(sa.text("DELETE FROM indicator_price"))
        wh.insert_arrow(conn, "indicator_price", price_table)
        conn.execute(sa.text("DELETE FROM indicator_value"))
        span = data_months(conn, today=today)
        if span is not None:
            _drop_temp(conn)
            conn.exec_driver_sql("CREATE TEMP TABLE ind_month (month_start DATE, month_end DATE, year_start DATE, "
                                 "born_by_65 DATE)")
            months = months_table(*span)
            wh.insert_arrow(conn, "ind_month", months)
            conn.exec_driver_sql("CREATE TEMP TABLE ind_dx_code (code VARCHAR, condition VARCHAR)")
            for condition, codes in DX_CODES.items():
                for code in codes:
                    conn.execute(sa.text("INSERT INTO ind_dx_code VALUES (:c, :k)"), {"c": code, "k": condition})
            for path in sql_files(wh.dialect):
                for stmt in statements(path):
                    conn.execute(sa.text(stmt), {"now": now} if ":now" in stmt else {})
            conn.execute(sa.text("UPDATE indicator_value SET rate = CASE WHEN denominator > 0 "
                                 "THEN numerator / denominator END"))
            _drop_temp(conn)
            summary.months = [m.isoformat()[:7] for m in months.column("month_start").to_pylist()]
        counts = conn.execute(sa.text("SELECT indicator, count(*) FROM indicator_value GROUP BY indicator")).fetchall()
    summary.per_indicator = {k: int(v) for k, v in sorted(counts)}
    summary.rows = sum(summary.per_indicator.values())
    summary.seconds = round(time.monotonic() - started, 2)
    log.info("indicators: %d rows for %d month(s) in %.1fs", summary.rows, len(summary.months), summary.seconds)
    return summary
