"""The family-doctor contract platform (家庭医生签约服务平台): one export file a day dropped into an inbox.

Most days a CSV in GB18030 (what Chinese Windows software writes; GB18030 rather than GBK because some names
use characters only GB18030 has), some days an XLSX (a clerk exported from another screen). Files are
written under a temporary name and renamed, as a careful exporter does, so a reader never sees half a file.

Each row is an event — 签约 (signing), 续约 (renewal) or 解约 (termination) — and carries the resident's
details as the platform holds them (typed with the same identity noise as every other source).
Who signs: key populations at high rates (65+, hypertension, diabetes, children under 7), others rarely;
terms of one year; renewals near expiry; terminations with a reason (DOMAIN.md codes 1–5).
Defects injected and recorded in truth: blank required fields, end before begin, unknown package codes,
future signing dates, termination date without reason (or the reverse), a second active contract for a
resident who already has one (overlap), and rows exported twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from countyhealth.simulate.noise import future_typo
from countyhealth.simulate.residents import Resident

HEADER = ["记录号", "协议编号", "事件", "居民姓名", "性别", "出生日期", "身份证号", "联系电话", "健康档案编号", "签约机构",
          "团队编码", "签约医生", "服务包", "签约日期", "生效日期", "到期日期", "状态", "解约日期", "解约原因", "更新时间"]
SEX = {"1": "男", "2": "女", "0": "未知", "9": "未知"}
EVENT = {"sign": "签约", "renew": "续约", "terminate": "解约"}
STATUS = {"signed": "已签约", "to_renew": "待续约", "terminated": "已解约"}
SOURCE_ID = "contracts"
TABLE = "contracts"


@dataclass
class Contract:
    number: str
    resident: int  # index into county.residents
    team: str
    doctor: str
    package: str
    signed: dt.date
    begin: dt.date
    end: dt.date
    facility: str
    active: bool = True
    renewed: bool = False


def _xlsx_day(day: int) -> bool:
    return day % 5 == 3  # deterministic: roughly one export in five is XLSX


class ContractExporter:
    def __init__(self, inbox: Path, county):
        self.inbox = inbox
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.county = county
        self.contracts: dict[str, Contract] = {}
        self.by_resident: dict[int, str] = {}
        self.seq = 0
        self.record_seq = 0
        self.typed: dict = {}  # resident index -> how the platform recorded them (it keeps one record each)

    # ---- state for `simulate advance` ---------------------------------------------------------------------
    def state(self) -> dict:
        return {"contracts": self.contracts, "by_resident": self.by_resident, "seq": self.seq,
                "record_seq": self.record_seq, "typed": self.typed}

    def restore(self, state: dict) -> None:
        self.__dict__.update(state)

    # ---- generation ---------------------------------------------------------------------------------------
    def _p_sign(self, r: Resident, on: dt.date) -> float:
        age = r.age(on)
        if r.hypertension or r.diabetes:
            return 0.75
        if age >= 65:
            return 0.7
        if age < 7:
            return 0.35
        return 0.06

    def _team(self, r: Resident, rng: random.Random) -> tuple[str, str, str]:
        c = self.county
        township = c.townships[r.township_index % len(c.townships)]
        team = f"T{township.code[-3:]}{rng.randint(1, 4):02d}"
        doctor = rng.choice("陈林黄郑张李王吴") + rng.choice(["医生", "主任", "建华", "秀英", "志强", "丽萍"])
        return township.code, team, doctor

    def _package(self, r: Resident, on: dt.date, rng: random.Random) -> str:
        if r.hypertension or r.diabetes:
            return rng.choice(["02", "03", "03"])
        if r.age(on) >= 65:
            return rng.choice(["01", "03"])
        return "01"

    def _new_contract(self, idx: int, signed: dt.date, rng: random.Random) -> Contract:
        r = self.county.residents[idx]
        facility, team, doctor = self._team(r, rng)
        self.seq += 1
        number = f"XY{facility[-3:]}{self.seq:08d}"
        begin = signed
        end = dt.date(begin.year + 1, begin.month, min(begin.day, 28)) - dt.timedelta(days=1)
        return Contract(number, idx, team, doctor, self._package(r, signed, rng), signed, begin, end, facility)

    def _row(self, c: Contract, event: str, when: dt.datetime, rng: random.Random, *,
             status: str | None = None, termination: tuple[dt.date, str] | None = None) -> list:
        county = self.county
        r = county.residents[c.resident]
        if c.resident not in self.typed:  # the platform's resident record, typed once, reused on every event
            self.typed[c.resident] = county.typed(r, random.Random(f"{county.cfg.seed}|contracts|typed|{c.resident}"))
        p = self.typed[c.resident]
        self.record_seq += 1
        rid = f"QY{self.record_seq:09d}"
        status = status or ("terminated" if event == "terminate" else "signed")
        row = {
            "记录号": rid, "协议编号": c.number, "事件": EVENT[event], "居民姓名": p.name, "性别": SEX[p.sex_or()],
            "出生日期": p.birth_text(), "身份证号": p.id_number, "联系电话": p.phone,
            "健康档案编号": r.health_record_number if rng.random() < 0.9 else None, "签约机构": c.facility,
            "团队编码": c.team, "签约医生": c.doctor, "服务包": c.package, "签约日期": c.signed.isoformat(),
            "生效日期": c.begin.isoformat(), "到期日期": c.end.isoformat(), "状态": STATUS[status],
            "解约日期": termination[0].isoformat() if termination else None,
            "解约原因": termination[1] if termination else None,
            "更新时间": when.strftime("%Y-%m-%d %H:%M:%S"),
        }
        defect = county.data_noise.roll(rng)
        column = None
        if defect == "blank_required":
            key, column = rng.choice([("团队编码", "team_code"), ("签约日期", "sign_date"), ("服务包", "package_type")])
            row[key] = None
        elif defect == "implausible_value":
            row["到期日期"] = (c.begin - dt.timedelta(days=rng.randint(1, 200))).isoformat()  # ends before it begins
            column = "end_date"
        elif defect == "unknown_code":
            row["服务包"], column = "09", "package_type"
        elif defect == "future_date":
            row["签约日期"], column = future_typo(when.date()).isoformat(), "sign_date"
        elif event == "terminate" and rng.random() < county.cfg.noise.unknown_code * 3:
            # a clerk fills one half of the termination pair
            if rng.random() < 0.5:
                row["解约原因"] = None
            else:
                row["解约日期"] = None
            defect, column = "termination_pair", "termination_reason"
        if defect and column:
            county.truth.defect(SOURCE_ID, TABLE, rid, defect, column)
        county.truth.record(SOURCE_ID, TABLE, rid, r.key, p.tags)
        return [row[h] for h in HEADER]

    def initial_backlog(self) -> None:
        """Everyone signed before the simulation starts, exported as the day before's file."""
        c = self.county
        rng = random.Random(f"{c.cfg.seed}|contracts|backlog")
        start = c.cfg.start_date
        rows = []
        for idx, r in enumerate(c.residents):
            if rng.random() >= self._p_sign(r, start):
                continue
            signed = start - dt.timedelta(days=rng.randint(1, 364))
            k = self._new_contract(idx, signed, rng)
            self.contracts[k.number] = k
            self.by_resident[idx] = k.number
            when = dt.datetime.combine(signed, dt.time(rng.randint(8, 17), rng.randint(0, 59)))
            rows.append(self._row(k, "sign", when, rng))
        self._write(start - dt.timedelta(days=1), rows, xlsx=False)

    def day(self, day: int, date: dt.date) -> None:
        c = self.county
        rng = random.Random(f"{c.cfg.seed}|contracts|{day}")
        rows: list = []

        def at() -> dt.datetime:
            return dt.datetime.combine(date, dt.time(rng.randint(8, 17), rng.randint(0, 59)))

        # renewals near expiry, terminations: walk contracts in a stable order
        for number in sorted(self.contracts):
            k = self.contracts[number]
            if not k.active:
                continue
            days_left = (k.end - date).days
            if not k.renewed and days_left <= 30 and rng.random() < 0.08:
                k.renewed = True
                k.active = False
                nk = Contract(k.number, k.resident, k.team, k.doctor, k.package, date, k.end + dt.timedelta(days=1),
                              dt.date(k.end.year + 1, k.end.month, min(k.end.day, 28)), k.facility)
                self.contracts[number] = nk
                rows.append(self._row(nk, "renew", at(), rng))
            elif days_left < 0 and not k.renewed:
                k.active = False  # lapsed without renewal
                self.by_resident.pop(k.resident, None)
            elif rng.random() < 0.0008:
                k.active = False
                self.by_resident.pop(k.resident, None)
                reason = rng.choices(["1", "2", "3", "4", "5"], [30, 15, 10, 35, 10])[0]
                rows.append(self._row(k, "terminate", at(), rng, termination=(date, reason)))
        # new signings
        n_new = int(len(c.residents) * 0.0006 + rng.random())
        for _ in range(n_new):
            idx = rng.randrange(len(c.residents))
            r = c.residents[idx]
            if rng.random() >= self._p_sign(r, date) * 2:
                continue
            overlap = idx in self.by_resident
            if overlap and (rng.random() >= c.cfg.noise.unknown_code * 5 or not self._has_id(idx)):
                continue  # already signed: the platform refuses a second contract (when it can tell: by ID)
            k = self._new_contract(idx, date, rng)
            self.contracts[k.number] = k
            row = self._row(k, "sign", at(), rng)
            if overlap:  # a second team signed a resident who already had an active contract
                c.truth.defect(SOURCE_ID, TABLE, row[0], "overlapping_contract", "contract_number")
            else:
                self.by_resident[idx] = k.number
            rows.append(row)
        # the export job occasionally writes a row twice
        for row in list(rows):
            if rng.random() < c.cfg.noise.duplicate_row:
                rows.append(list(row))
                c.truth.defect(SOURCE_ID, TABLE, row[0], "duplicate_row", "")
        self._write(date, rows, xlsx=_xlsx_day(day))

    def _has_id(self, idx: int) -> bool:
        typed = self.typed.get(idx)
        from countyhealth import resident_id

        return typed is not None and resident_id.parse(typed.id_number).id18 is not None

    # ---- files --------------------------------------------------------------------------------------------
    def _write(self, date: dt.date, rows: list, *, xlsx: bool) -> Path:
        name = f"qianyue_{date:%Y%m%d}." + ("xlsx" if xlsx else "csv")
        final = self.inbox / name
        tmp = self.inbox / f".{name}.tmp"
        if xlsx:
            import openpyxl

            from countyhealth.simulate.county import normalise_zip

            wb = openpyxl.Workbook()
            export_time = dt.datetime.combine(date, dt.time(23, 0))
            wb.properties.created = wb.properties.modified = export_time  # not "now": same export, same bytes
            ws = wb.active
            ws.title = "签约明细"
            ws.append(HEADER)
            for row in rows:
                ws.append(row)
            wb.save(tmp)
            normalise_zip(tmp)  # same content, same bytes: a re-export is recognisable by checksum
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            w.writerow(HEADER)
            w.writerows(rows)
            tmp.write_bytes(buf.getvalue().encode("gb18030"))
        os.replace(tmp, final)
        key = (SOURCE_ID, TABLE)
        self.county.truth.rows[key] = self.county.truth.rows.get(key, 0) + len(rows)
        return final
