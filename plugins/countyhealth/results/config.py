"""The county's recognition configuration (``config/recognition.yaml``) and harmonisation maps, as the
warehouse tables the shared-results SQL joins (loaded afresh by every refresh)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import pyarrow as pa
import sqlalchemy as sa
import yaml

from countyhealth import reference, settings
from countyhealth.standardise import lab as lab_std


@dataclass
class RecognitionConfig:
    mark: str = "HR"
    final_statuses: list[str] = field(default_factory=lambda: ["final", "corrected"])
    lab: dict[str, dict] = field(default_factory=dict)  # item_code -> {validity_days}
    exam: dict[str, dict] = field(default_factory=dict)  # item_code -> {validity_days, requires_images}


class RecognitionConfigError(ValueError):
    pass


def load() -> RecognitionConfig:
    path = settings.config_dir() / "recognition.yaml"
    if not path.exists():
        raise RecognitionConfigError(f"{path.name} not found in the config folder: the county's recognised-item list "
                                     "is required (see config/recognition.yaml in the repository)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cfg = RecognitionConfig(mark=data.get("mark", "HR"), final_statuses=list(data.get("final_statuses") or
                                                                           ["final", "corrected"]),
                            lab=dict(data.get("lab") or {}), exam=dict(data.get("exam") or {}))
    labs, exams = reference.lab_items(), reference.exam_items()
    for code, spec in cfg.lab.items():
        if code not in labs:
            raise RecognitionConfigError(f"config/recognition.yaml: lab.{code} is not a county lab item "
                                         f"(reference/lab_items.csv)")
        if not isinstance(spec, dict) or int(spec.get("validity_days", 0)) <= 0:
            raise RecognitionConfigError(f"config/recognition.yaml: lab.{code} needs validity_days > 0")
    for code in cfg.exam:
        if code not in exams:
            raise RecognitionConfigError(f"config/recognition.yaml: exam.{code} is not a county exam item")
    return cfg


def _replace(wh, conn, table: str, data: pa.Table) -> None:
    conn.execute(sa.text(f"DELETE FROM {table}"))
    wh.insert_arrow(conn, table, data)


def load_into_warehouse(wh, conn, cfg: RecognitionConfig) -> None:
    labs, exams = reference.lab_items(), reference.exam_items()
    lm = lab_std.lab_map().values()
    _replace(wh, conn, "lab_item_map", pa.table({
        "code_system": [e.code_system for e in lm], "local_code": [e.local_code for e in lm],
        "local_name": [e.local_name for e in lm], "item_code": [e.item_code for e in lm],
        "loinc": [e.standard_code or (labs[e.item_code].loinc if e.item_code in labs else None) for e in lm]}))
    em = lab_std.exam_map().values()
    _replace(wh, conn, "exam_item_map", pa.table({
        "code_system": [e.code_system for e in em], "local_code": [e.local_code for e in em],
        "local_name": [e.local_name for e in em], "item_code": [e.item_code for e in em],
        "procedure_code": [e.standard_code for e in em]}))
    rows = []
    for item in labs.values():
        for unit, factor in item.unit_factors.items():
            rows.append((item.item_code, lab_std.unit_key(unit), unit, factor, item.canonical_unit))
    _replace(wh, conn, "lab_unit_factor", pa.table(dict(zip(
        ["item_code", "unit_key", "unit", "factor", "canonical_unit"], map(list, zip(*rows))))))
    rec = [(c, "lab", labs[c].name, labs[c].loinc, int(s["validity_days"]), False) for c, s in cfg.lab.items()]
    rec += [(c, "exam", exams[c].name, None, int(s.get("validity_days", exams[c].validity_days)),
             bool(s.get("requires_images", False))) for c, s in cfg.exam.items()]
    cols = ["item_code", "kind", "name", "loinc", "validity_days", "requires_images"]
    _replace(wh, conn, "recognised_item", pa.table(
        {c: pa.array(list(v), t) for c, v, t in zip(cols, zip(*rec), [pa.string(), pa.string(), pa.string(),
                                                                         pa.string(), pa.int32(), pa.bool_()])}))


def load_eqa(wh, path) -> int:
    """Load a CSV of EQA results (facility_code, item_code, period_start, period_end, passed) — replacing
    what was loaded before for the same facility, item and period."""
    import datetime as dt

    rows = []
    with open(path, encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"facility_code", "item_code", "period_start", "period_end", "passed"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for n, r in enumerate(reader, 2):
            try:
                rows.append((r["facility_code"].strip(), r["item_code"].strip(), dt.date.fromisoformat(r["period_start"]),
                             dt.date.fromisoformat(r["period_end"]), r["passed"].strip().lower() in ("1", "true", "yes",
                                                                                                     "passed", "合格")))
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"{path}: line {n}: {exc} — dates as YYYY-MM-DD, passed as 1/0") from None
    now = dt.datetime.now()
    with wh.begin() as conn:
        for r in rows:
            conn.execute(sa.text("DELETE FROM eqa_certification WHERE facility_code = :f AND item_code = :i AND "
                                 "period_start = :s"), {"f": r[0], "i": r[1], "s": r[2]})
        if rows:
            cols = list(zip(*rows))
            wh.insert_arrow(conn, "eqa_certification", pa.table({
                "facility_code": pa.array(cols[0]), "item_code": pa.array(cols[1]),
                "period_start": pa.array(cols[2], pa.date32()), "period_end": pa.array(cols[3], pa.date32()),
                "passed": pa.array(cols[4], pa.bool_()), "loaded_at": pa.array([now] * len(rows), pa.timestamp("us"))}))
    return len(rows)
