"""HIS databases of two vendors, each in its native shape (written through SQLAlchemy).

Vendor A (county-level hospitals): upper-case English table/column names, sex ``M``/``F``/``U``, ISO dates,
SI units, status ``F`` final / ``C`` corrected, local lab codes ``A1xxx``.
Vendor B (township centres, a 前置库 the vendor fills): pinyin-abbreviated names, sex ``男``/``女``/``未知``,
birth dates ``YYYYMMDD`` and times ``YYYY/MM/DD HH:MM``, glucose and lipids in mg/dL, status ``审核``/``更正``,
local lab codes ``JY0xx``; no primary keys (duplicate rows happen, as in real intermediate databases).
Both carry an update time on every row.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from countyhealth import reference

# standard item -> (vendor A local code, vendor B local code); B reports these in mg/dL
LAB_LOCAL = {
    "HR-WBC": ("A1001", "JY001"), "HR-RBC": ("A1002", "JY002"), "HR-HGB": ("A1003", "JY003"),
    "HR-PLT": ("A1004", "JY004"), "HR-GLU": ("A1101", "JY011"), "HR-HBA1C": ("A1102", "JY012"),
    "HR-ALT": ("A1201", "JY021"), "HR-AST": ("A1202", "JY022"), "HR-TBIL": ("A1203", "JY023"),
    "HR-ALB": ("A1204", "JY024"), "HR-CREA": ("A1301", "JY031"), "HR-UREA": ("A1302", "JY032"),
    "HR-UA": ("A1303", "JY033"), "HR-K": ("A1401", "JY041"), "HR-NA": ("A1402", "JY042"),
    "HR-CL": ("A1403", "JY043"), "HR-CA": ("A1404", "JY044"), "HR-TC": ("A1501", "JY051"),
    "HR-TG": ("A1502", "JY052"), "HR-HDL": ("A1503", "JY053"), "HR-LDL": ("A1504", "JY054"),
    "HR-CRP": ("A1601", "JY061"), "HR-TSH": ("A1701", "JY071"), "HR-PT": ("A1801", "JY081"),
    "HR-HBSAG": ("A1901", "JY091"), "HR-HCVAB": ("A1902", "JY092"), "HR-UPRO": ("A2001", "JY101"),
    "HR-UGLU": ("A2002", "JY102"), "HR-UBLD": ("A2003", "JY103"),
}
# items a member runs that are not on the county's list (unmapped local codes for the coverage report)
UNLISTED_LAB = {"A": [("A9001", "ABO血型", "")], "B": [("JY901", "血沉", "mm/h")]}
B_MG_DL = {"HR-GLU", "HR-TC", "HR-TG", "HR-HDL", "HR-LDL"}

EXAM_LOCAL = {
    "HR-CT-HEAD": ("CT01", None), "HR-CT-CHEST": ("CT03", None), "HR-MR-HEAD": ("MR01", None),
    "HR-MR-LSPINE": ("MR05", None), "HR-DR-CHEST": ("DR03", "FS001"), "HR-DR-KNEE": ("DR08", "FS002"),
    "HR-US-ABD": ("US04", "CS001"), "HR-US-THY": ("US02", "CS002"), "HR-US-HEART": ("US32", None),
    "HR-ECG": ("EC01", "XD001"),
}
B_EXAM_CLASS = {"DR": "放射", "US": "B超", "ECG": "心电图", "CT": "CT", "MR": "MR"}
SEX_A = {"1": "M", "2": "F", "0": "U", "9": "U"}
SEX_B = {"1": "男", "2": "女", "0": "未知", "9": "未知"}


def _cols(*names: str) -> list[sa.Column]:
    return [sa.Column(n, sa.String) for n in names]


def vendor_a_tables(md: sa.MetaData) -> dict[str, sa.Table]:
    return {
        "patient": sa.Table("PAT_MASTER_INDEX", md, sa.Column("PATIENT_ID", sa.String, primary_key=True),
                            *_cols("NAME", "SEX", "DATE_OF_BIRTH", "ID_TYPE", "ID_NO", "PHONE_NUMBER",
                                   "MAILING_ADDRESS", "REGISTER_ORG", "UPDATE_TIME")),
        "visit": sa.Table("PAT_VISIT", md, sa.Column("VISIT_ID", sa.String, primary_key=True),
                          *_cols("PATIENT_ID", "ORG_CODE", "VISIT_TYPE", "VISIT_DATE", "DISCHARGE_DATE",
                                 "DEPT_NAME", "DIAG_CODE", "DIAG_NAME", "OTHER_DIAG", "DOCTOR", "UPDATE_TIME")),
        "lab": sa.Table("LAB_RESULT", md, sa.Column("RESULT_ID", sa.String, primary_key=True),
                        *_cols("REPORT_NO", "PATIENT_ID", "VISIT_ID", "ORG_CODE", "ITEM_CODE", "ITEM_NAME",
                               "RESULT", "UNITS", "REF_RANGE", "ABNORMAL_IND", "SPECIMEN_NO", "SPECIMEN",
                               "COLLECT_TIME", "RECEIVE_TIME", "TEST_TIME", "REPORT_TIME", "RESULT_STATUS",
                               "INSTRUMENT", "UPDATE_TIME")),
        "exam": sa.Table("EXAM_REPORT", md, sa.Column("EXAM_NO", sa.String, primary_key=True),
                         *_cols("PATIENT_ID", "VISIT_ID", "ORG_CODE", "EXAM_CLASS", "EXAM_ITEM_CODE", "EXAM_ITEM",
                                "BODY_PART", "DESCRIPTION", "IMPRESSION", "EXAM_DATE_TIME", "REPORT_DATE_TIME",
                                "STUDY_UID", "DEVICE", "STATUS", "UPDATE_TIME")),
    }


def vendor_b_tables(md: sa.MetaData) -> dict[str, sa.Table]:
    # no primary keys: a 前置库 filled by the vendor's sync job; duplicate rows do occur
    return {
        "patient": sa.Table("hz_jbxx", md, *_cols("hzid", "xm", "xb", "csrq", "zjlx", "sfzh", "lxdh", "jtzz",
                                                  "jgdm", "gxsj")),
        "visit": sa.Table("mz_jzjl", md, *_cols("jzid", "hzid", "jgdm", "jzlx", "jzsj", "cysj", "ksmc", "zdbm",
                                                "zdmc", "qtzd", "ysxm", "gxsj")),
        "lab": sa.Table("jy_jg", md, *_cols("jgid", "bgdh", "hzid", "jzid", "jgdm", "xmdm", "xmmc", "jg", "dw",
                                            "ckfw", "ycbz", "bbh", "bblx", "cysj", "jssj", "jysj", "bgsj", "zt",
                                            "yq", "gxsj")),
        "exam": sa.Table("jc_bg", md, *_cols("bgid", "hzid", "jzid", "jgdm", "jclx", "xmdm", "xmmc", "bw", "jcsj",
                                             "jcts", "jcrq", "bgrq", "yxh", "zt", "gxsj")),
    }


def _ensure_database(url: str) -> None:
    """PostgreSQL: create the member's database when it doesn't exist yet (SQLite files create themselves)."""
    u = sa.engine.make_url(url)
    if not u.drivername.startswith("postgresql"):
        return
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}).scalar():
                conn.exec_driver_sql(f'CREATE DATABASE "{u.database}"')
    finally:
        admin.dispose()


def iso(t: dt.datetime | None) -> str | None:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else None


def b_time(t: dt.datetime | None) -> str | None:
    return t.strftime("%Y/%m/%d %H:%M") if t else None


class HisWriter:
    """One member's HIS database; rows are buffered per simulated day and written in one transaction."""

    def __init__(self, url: str, vendor: str, *, fresh: bool = True):
        self.vendor = vendor
        _ensure_database(url)
        self.engine = sa.create_engine(url)
        self.md = sa.MetaData()
        self.tables = vendor_a_tables(self.md) if vendor == "A" else vendor_b_tables(self.md)
        if fresh:
            self.md.drop_all(self.engine)
        self.md.create_all(self.engine)
        self.buffer: dict[str, list[dict]] = {k: [] for k in self.tables}
        self.counts: dict[str, int] = {k: 0 for k in self.tables}

    def table_name(self, kind: str) -> str:
        return self.tables[kind].name

    def add(self, kind: str, row: dict) -> None:
        self.buffer[kind].append(row)

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for kind, rows in self.buffer.items():
                if not rows:
                    continue
                if self.vendor == "A" and kind in ("lab", "exam", "visit", "patient"):
                    # vendor A updates in place (corrections overwrite the row, bumping UPDATE_TIME)
                    key = self.tables[kind].primary_key.columns.values()[0].name
                    keys = [r[key] for r in rows]
                    conn.execute(self.tables[kind].delete().where(self.tables[kind].c[key].in_(keys)))
                conn.execute(self.tables[kind].insert(), rows)
                self.counts[kind] += len(rows)
                rows.clear()

    def close(self) -> None:
        self.flush()
        self.engine.dispose()


def lab_value(item: reference.LabItem, rng, *, high: bool = False) -> tuple[float | None, str]:
    """A plausible result in the canonical unit, and its text (censored or qualitative where realistic)."""
    if not item.quantitative:
        return None, rng.choices(["阴性", "-", "弱阳性", "+", "++", "阳性"], [70, 15, 5, 5, 2, 3])[0]
    lo, hi = item.ref_low or 0.0, item.ref_high or (item.ref_low or 1.0) * 2
    span = hi - lo
    value = rng.uniform(lo - 0.15 * span, hi + 0.25 * span)
    if high:
        value = hi + rng.uniform(0.1, 1.5) * span
    value = max(value, (item.phys_low or 0) + 0.01 * span)
    if item.item_code == "HR-CRP" and value < 0.5:
        return None, "<0.5"
    if item.item_code == "HR-ALT" and rng.random() < 0.002:
        return None, ">1000"
    if item.item_code == "HR-TSH" and value < 0.1 and rng.random() < 0.5:
        return None, "<0.1"
    return value, None
