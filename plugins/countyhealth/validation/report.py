"""``countyhealth report``: one self-contained HTML run report for the county IT team.

What they look at in the morning: did every member load, what was held and what to do about it, did every
batch reconcile, where the rows came from, which rules fail most and whether that is getting better, which
facilities produce the most defects. Read from the warehouse (``batch_audit``, ``quarantine``, ``finding``,
the ``facility`` registry, the canonical tables' ``batch_id``, and — when those stages have run — the EMPI and
shared-result tables) and the failure records the pipeline writes under ``reports/failures/*.jsonl``.

One HTML file: inline CSS and hand-drawn inline SVG charts, no JavaScript, no external CSS, fonts or images,
so it opens offline, from a mail attachment or a USB stick. (Plotly, Vega or Chart.js would need 1-3 MB of
inlined JS per report for four simple charts; SVG bars and lines are a few dozen lines here.) Every text that
comes from data goes through ``privacy.scrub`` before escaping: no ID number or phone can reach the file,
even if an upstream stage forgot to mask one.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import click

from countyhealth import model, privacy, settings

TOP_RULES = 8  # rules drawn in the failing-share chart
TOP_FACILITIES = 12
EXAMPLES_PER_RULE = 3
PALETTE = ("#1b6ca8", "#e07b39", "#3a9d5d", "#c0392b", "#8e5ea2", "#7f8c8d", "#d4ac0d", "#17a2b8",
           "#a0522d", "#2c3e50")
STATUS_LABEL = {"loaded": "loaded", "released": "released (loaded after a hold)", "held": "HELD", "failed": "FAILED",
                "superseded": "superseded (a later batch read its rows again)"}


class ReportError(RuntimeError):
    """The report cannot be written; the message says why and what to do."""


# ---- reading the warehouse ----------------------------------------------------------------------------

@dataclass
class AuditRow:
    batch_id: str
    dataset: str
    source_id: str
    stream: str
    status: str
    rows_extracted: int
    rows_loaded: int
    rows_quarantined: int
    rows_duplicate: int
    rows_flagged: int
    failing_share: float | None
    threshold: float | None
    validated_at: dt.datetime | None
    loaded_at: dt.datetime | None
    message: str | None

    @property
    def reconciled(self) -> bool:
        return self.rows_extracted == self.rows_loaded + self.rows_quarantined + self.rows_duplicate


@dataclass
class ReportData:
    generated_at: dt.datetime
    since: dt.datetime
    days: int
    warehouse: str
    audits: list[AuditRow] = field(default_factory=list)  # in the window
    held: list[AuditRow] = field(default_factory=list)  # held now, whenever validated
    failures: list[dict] = field(default_factory=list)
    facility_names: dict[str, str] = field(default_factory=dict)
    rows_by_facility: dict[str, dict[str, int]] = field(default_factory=dict)  # facility -> dataset -> rows
    rule_by_day: dict[str, dict[dt.date, int]] = field(default_factory=dict)  # rule -> day -> rows quarantined
    extracted_by_day: dict[tuple[str, dt.date], int] = field(default_factory=dict)  # (dataset, day) -> rows
    facility_defects: dict[str, int] = field(default_factory=dict)  # facility -> quarantined rows
    facility_findings: dict[str, int] = field(default_factory=dict)
    facility_top_rule: dict[str, tuple[str, int]] = field(default_factory=dict)
    rule_totals: dict[str, int] = field(default_factory=dict)  # quarantine, in the window
    finding_totals: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # rule -> a few (masked) offending values
    persons_active: int | None = None  # EMPI, when identity has run
    review_open: int | None = None
    shared_labs: int | None = None  # shared results, when that stage has run
    shared_exams: int | None = None


def _day(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _describe(url) -> str:
    """The warehouse without credentials or local paths: engine and database name."""
    name = Path(url.database).name if url.database else "in memory"
    return f"{url.get_backend_name()} · {name}"


def gather(wh, *, days: int = 30, now: dt.datetime | None = None) -> ReportData:
    """Read everything the report shows (aggregated in SQL; the same SQL runs on DuckDB and PostgreSQL)."""
    import sqlalchemy as sa

    from countyhealth import failures
    from countyhealth.warehouse import retry_on_lock

    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # audit times are UTC
    since = now - dt.timedelta(days=days)
    data = ReportData(now, since, days, _describe(wh.engine.url))

    def read():
        with wh.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if "batch_audit" not in tables:
                raise ReportError(f"the warehouse ({data.warehouse}) has no batch_audit table: run "
                                  "`countyhealth warehouse migrate` (or a pipeline run) first")
            _read(conn, data, tables)

    retry_on_lock(read) if wh.dialect == "duckdb" else read()
    data.failures = [f for f in failures.read(since=since) if f.get("stage") != "check"]
    return data


_AUDIT_COLS = ("batch_id, dataset, source_id, stream, status, rows_extracted, rows_loaded, rows_quarantined, "
               "rows_duplicate, rows_flagged, failing_share, threshold, validated_at, loaded_at, message")


def _read(conn, data: ReportData, tables: set[str]) -> None:
    import sqlalchemy as sa

    p = {"since": data.since}
    def q(sql: str) -> list:
        return conn.execute(sa.text(sql), p).all()

    data.audits = [AuditRow(*r) for r in q(
        f"SELECT {_AUDIT_COLS} FROM batch_audit WHERE COALESCE(loaded_at, validated_at) >= :since "
        "ORDER BY COALESCE(loaded_at, validated_at), source_id, stream, batch_id, dataset")]
    data.held = [AuditRow(*r) for r in q(
        f"SELECT {_AUDIT_COLS} FROM batch_audit WHERE status = 'held' ORDER BY validated_at, batch_id, dataset")]
    for code, name in q("SELECT facility_code, MIN(name) FROM facility GROUP BY facility_code"):
        if code:
            data.facility_names[code] = name
    loaded_in_window = ("SELECT batch_id FROM batch_audit WHERE status IN ('loaded', 'released') "
                        "AND loaded_at >= :since")
    for dataset in model.DATASET_NAMES:  # table names are our own dataset names, never user input
        for code, n in q(f"SELECT facility_code, COUNT(*) FROM {dataset} WHERE batch_id IN ({loaded_in_window}) "
                         "GROUP BY facility_code"):
            data.rows_by_facility.setdefault(code or "(none)", {})[dataset] = int(n)
    for day, rule, n in q("SELECT CAST(quarantined_at AS DATE), rule_id, COUNT(*) FROM quarantine "
                          "WHERE quarantined_at >= :since GROUP BY CAST(quarantined_at AS DATE), rule_id"):
        data.rule_by_day.setdefault(rule, {})[_day(day)] = int(n)
        data.rule_totals[rule] = data.rule_totals.get(rule, 0) + int(n)
    for day, dataset, n in q("SELECT CAST(loaded_at AS DATE), dataset, SUM(rows_extracted) FROM batch_audit "
                             "WHERE status IN ('loaded', 'released') AND loaded_at >= :since "
                             "GROUP BY CAST(loaded_at AS DATE), dataset"):
        data.extracted_by_day[(dataset, _day(day))] = int(n or 0)
    for rule, n in q("SELECT rule_id, COUNT(*) FROM finding WHERE found_at >= :since GROUP BY rule_id"):
        data.finding_totals[rule] = int(n)
    # a row failing two rules is one defective row: count distinct (batch, dataset, row)
    for table, at, target in (("quarantine", "quarantined_at", data.facility_defects),
                              ("finding", "found_at", data.facility_findings)):
        for code, n in q(f"SELECT facility_code, COUNT(*) FROM (SELECT facility_code, batch_id, dataset, row_number "
                         f"FROM {table} WHERE {at} >= :since GROUP BY facility_code, batch_id, dataset, row_number) r "
                         "GROUP BY facility_code"):
            target[code or "(none)"] = int(n)
    for code, rule, n in q("SELECT facility_code, rule_id, COUNT(*) FROM quarantine WHERE quarantined_at >= :since "
                           "GROUP BY facility_code, rule_id"):
        key = code or "(none)"
        if n > data.facility_top_rule.get(key, ("", 0))[1]:
            data.facility_top_rule[key] = (rule, int(n))
    for rule, value in q("SELECT rule_id, offending_value FROM (SELECT rule_id, offending_value, ROW_NUMBER() OVER "
                         "(PARTITION BY rule_id ORDER BY quarantined_at DESC, offending_value) AS k FROM quarantine "
                         "WHERE quarantined_at >= :since AND offending_value IS NOT NULL) e "
                         f"WHERE k <= {EXAMPLES_PER_RULE}"):
        data.examples.setdefault(rule, []).append(value)
    if {"empi_person", "identity_review"} <= tables:
        data.persons_active = int(q("SELECT COUNT(*) FROM empi_person WHERE status = 'active'")[0][0])
        data.review_open = int(q("SELECT COUNT(*) FROM identity_review WHERE status = 'open'")[0][0])
    if {"shared_lab_result", "shared_exam_report"} <= tables:
        data.shared_labs = int(q("SELECT COUNT(*) FROM shared_lab_result")[0][0])
        data.shared_exams = int(q("SELECT COUNT(*) FROM shared_exam_report")[0][0])


# ---- HTML helpers ---------------------------------------------------------------------------------------

def esc(value) -> str:
    """Escape for HTML after masking anything that looks like an ID number or a phone."""
    if value is None:
        return ""
    return html.escape(privacy.scrub(str(value)))


def _num(n) -> str:
    return f"{int(n):,}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else ""


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def svg_stacked_bars(rows: list[tuple[str, dict[str, float]]], keys: list[str], *, title: str, width: int = 760) -> str:
    """Horizontal stacked bars: one bar per label, one colour per key, with a legend."""
    if not rows:
        return '<p class="empty">No rows in this window.</p>'
    bar, gap, left, right, top = 16, 6, 230, 70, 28
    height = top + len(rows) * (bar + gap) + 30
    total_max = _nice_max(max(sum(v.values()) for _, v in rows))
    scale = (width - left - right) / total_max
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}" class="chart">']
    x = left
    for i, k in enumerate(keys):  # legend
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="15" class="lbl">{esc(k)}</text>')
        x += 18 + 7 * len(k)
    for r, (label, values) in enumerate(rows):
        y = top + r * (bar + gap)
        parts.append(f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end" class="lbl">{esc(label)}</text>')
        x = float(left)
        for i, k in enumerate(keys):
            v = values.get(k, 0)
            if v:
                w = v * scale
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar}" '
                             f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(label)} · {esc(k)}: {_num(v)}</title></rect>')
                x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + bar - 4}" class="val">{_num(sum(values.values()))}</text>')
    axis_y = top + len(rows) * (bar + gap) + 4
    for t in range(5):
        v = total_max * t / 4
        xx = left + v * scale
        parts.append(f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{axis_y}" class="grid"/>'
                     f'<text x="{xx:.1f}" y="{axis_y + 14}" text-anchor="middle" class="tick">{_num(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_lines(series: dict[str, list[tuple[dt.date, float]]], *, title: str, width: int = 760,
              height: int = 280) -> str:
    """One line per series over days; y is a share (0..1) shown in percent."""
    points = [p for s in series.values() for p in s]
    if not points:
        return '<p class="empty">Nothing was quarantined in this window.</p>'
    left, right, top, bottom = 56, 20, 14, 40
    days = sorted({d for d, _ in points})
    d0, d1 = days[0], days[-1]
    span = max((d1 - d0).days, 1)
    y_max = _nice_max(max(v for _, v in points) * 100) / 100
    def px(d: dt.date) -> float:
        return left + (width - left - right) * ((d - d0).days / span if len(days) > 1 else 0.5)

    def py(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}" class="chart">']
    for t in range(5):
        v = y_max * t / 4
        parts.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{width - right}" y2="{py(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" class="tick">{100 * v:.1f}%</text>')
    step = max(1, len(days) // 8)
    for d in days[::step]:
        parts.append(f'<text x="{px(d):.1f}" y="{height - bottom + 16}" text-anchor="middle" class="tick">'
                     f'{d:%m-%d}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        path = " ".join(f"{px(d):.1f},{py(v):.1f}" for d, v in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for d, v in pts:
            parts.append(f'<circle cx="{px(d):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{esc(name)} · {d}: {100 * v:.2f}%</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="sw" style="background:{PALETTE[i % len(PALETTE)]}"></span>{esc(n)}</li>'
                     for i, n in enumerate(series))
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


# ---- the page ----------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:0;
 color:#222;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:2px solid #dde;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:1.5em}.card.bad{border-color:#c0392b;color:#c0392b}.card.warn{border-color:#e07b39}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.88em;margin:6px 0}
th,td{border:1px solid #e2e4e8;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea}tr.held td{background:#fff4e5}
.ok{color:#2e7d32;font-weight:600}.no{color:#c0392b;font-weight:600}
.chart{background:#fff;border:1px solid #e2e4e8;border-radius:4px}
.lbl{font-size:11px;fill:#333}.val{font-size:10px;fill:#555}.tick{font-size:10px;fill:#777}
.grid{stroke:#e5e5e5;stroke-width:1}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:.85em}
.sw{display:inline-block;width:10px;height:10px;margin-right:5px}
.empty{color:#777;font-style:italic}
code{background:#eef0f4;padding:1px 4px;border-radius:3px}
.todo{background:#fff;border-left:4px solid #e07b39;padding:8px 12px;margin:8px 0}
details{margin:6px 0}
"""


def _rule_docs() -> dict[str, tuple[str, str, str]]:
    """rule id -> (category, severity, doc) from the suites (mapping rules are described generically)."""
    from countyhealth.validation import suites

    try:
        return {r.rule_id: (r.category, r.severity, r.doc) for r in suites.all_rules()}
    except suites.SuiteError:
        return {}


def _rule_doc(rule_id: str, docs: dict) -> tuple[str, str]:
    if rule_id in docs:
        return docs[rule_id][0], docs[rule_id][2]
    parts = rule_id.split(".")
    if len(parts) >= 4 and parts[2] == "parse":
        return parts[1], f"the source's value for {parts[3]} could not be read or mapped (connector mapping)"
    return (parts[1] if len(parts) > 1 else ""), ""


def _facility_label(code: str | None, d: ReportData) -> str:
    if not code:
        return ""
    name = d.facility_names.get(code)
    return f"{name} ({code})" if name else code


def _summary_section(d: ReportData) -> str:
    batches: dict[str, list[AuditRow]] = defaultdict(list)
    for a in d.audits:
        batches[a.batch_id].append(a)
    status_of = {b: ("held" if any(a.status == "held" for a in rows) else rows[0].status) for b, rows in batches.items()}
    def n(status: str) -> int:
        return sum(1 for v in status_of.values() if v == status)

    def tot(attr: str) -> int:
        return sum(getattr(a, attr) for a in d.audits if a.status not in ("held", "superseded"))

    mismatched = [a for a in d.audits if a.status not in ("held", "superseded") and not a.reconciled]
    members_failing = len({(f.get("source_id"), f.get("stream")) for f in d.failures})
    cards = [("batches loaded", n("loaded"), ""), ("released after a hold", n("released"), ""),
             ("batches held", n("held"), "warn" if n("held") else ""),
             ("failures", len(d.failures), "bad" if d.failures else ""),
             ("members failing", members_failing, "bad" if members_failing else ""),
             ("rows extracted", tot("rows_extracted"), ""), ("rows loaded", tot("rows_loaded"), ""),
             ("rows quarantined", tot("rows_quarantined"), ""), ("duplicate rows", tot("rows_duplicate"), ""),
             ("rows with findings", tot("rows_flagged"), ""),
             ("reconciliation mismatches", len(mismatched), "bad" if mismatched else "")]
    if d.persons_active is not None:
        cards.append(("persons (EMPI)", d.persons_active, ""))
        cards.append(("record pairs to review", d.review_open or 0, "warn" if d.review_open else ""))
    if d.shared_labs is not None:
        cards.append(("shared results (lab + exam)", d.shared_labs + (d.shared_exams or 0), ""))
    out = ['<h2>Run summary</h2><div class="cards">']
    out += [f'<div class="card {c}"><b>{_num(v)}</b>{esc(k)}</div>' for k, v, c in cards]
    out.append("</div>")
    if d.failures:
        out.append("<h3>Failures</h3><table><tr><th>when (UTC)</th><th>source</th><th>stream</th><th>stage</th>"
                   "<th>facility</th><th>what happened</th></tr>")
        for f in d.failures[-100:]:
            out.append(f"<tr class=bad><td>{esc(f.get('at'))}</td><td>{esc(f.get('source_id'))}</td>"
                       f"<td>{esc(f.get('stream'))}</td><td>{esc(f.get('stage'))}</td>"
                       f"<td>{esc(_facility_label(f.get('facility_code'), d))}</td>"
                       f"<td>{esc((f.get('reason') or '')[:600])}</td></tr>")
        out.append("</table><p class=sub>A failed stream catches up from its watermark on the next run.</p>")
    out.append("<h3>Batches and reconciliation</h3>"
               "<p class=sub>Every batch must reconcile: rows extracted = rows loaded + rows quarantined + duplicate "
               "rows. The loader refuses a batch that does not; a held batch moves nothing.</p>")
    if not d.audits:
        out.append('<p class="empty">No batch was loaded or validated in this window.</p>')
        return "".join(out)
    out.append("<table><tr><th>batch</th><th>source / stream</th><th>dataset</th><th>status</th>"
               "<th>extracted</th><th>loaded</th><th>quarantined</th><th>duplicate</th><th>flagged</th>"
               "<th>failing share</th><th>reconciled</th><th>loaded at (UTC)</th><th>note</th></tr>")
    for a in d.audits:
        not_loaded = a.status in ("held", "superseded")
        cls = "held" if a.status == "held" else ("bad" if not not_loaded and (not a.reconciled or a.status == "failed")
                                                 else "")
        rec = ('<span class="ok">—</span>' if not_loaded
               else '<span class="ok">exact</span>' if a.reconciled else '<span class="no">MISMATCH</span>')
        out.append(f"<tr class='{cls}'><td>{esc(a.batch_id)}</td><td>{esc(a.source_id)} / {esc(a.stream)}</td>"
                   f"<td>{esc(a.dataset)}</td><td>{esc(STATUS_LABEL.get(a.status, a.status))}</td>"
                   f"<td class=n>{_num(a.rows_extracted)}</td><td class=n>{_num(a.rows_loaded)}</td>"
                   f"<td class=n>{_num(a.rows_quarantined)}</td><td class=n>{_num(a.rows_duplicate)}</td>"
                   f"<td class=n>{_num(a.rows_flagged)}</td><td class=n>{_pct(a.failing_share)}</td>"
                   f"<td>{rec}</td><td>{_when(a.loaded_at)}</td><td>{esc(a.message)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _rows_section(d: ReportData) -> str:
    keys = [ds for ds in model.DATASET_NAMES if any(ds in v for v in d.rows_by_facility.values())]
    rows = sorted(d.rows_by_facility.items(), key=lambda kv: -sum(kv[1].values()))
    out = ["<h2>Rows loaded per facility and dataset</h2>",
           "<p class=sub>Records loaded or updated by the batches of this window, by the facility that recorded them.</p>",
           svg_stacked_bars([(_facility_label(c, d), v) for c, v in rows[:40]], keys, title="rows per facility")]
    if rows:
        out.append("<details><summary>as a table</summary><table><tr><th>facility</th>"
                   + "".join(f"<th>{esc(k)}</th>" for k in keys) + "<th>total</th></tr>")
        for code, v in rows:
            out.append(f"<tr><td>{esc(_facility_label(code, d))}</td>"
                       + "".join(f"<td class=n>{_num(v.get(k, 0))}</td>" for k in keys)
                       + f"<td class=n>{_num(sum(v.values()))}</td></tr>")
        out.append("</table></details>")
    return "".join(out)


def _rules_section(d: ReportData, docs: dict) -> str:
    top = sorted(d.rule_totals, key=lambda r: -d.rule_totals[r])[:TOP_RULES]
    series = {}
    for rule in top:
        dataset = rule.split(".", 1)[0]
        pts = []
        for day, n in sorted(d.rule_by_day[rule].items()):
            denom = d.extracted_by_day.get((dataset, day))
            if denom:
                pts.append((day, n / denom))
        if pts:
            series[rule] = pts
    out = ["<h2>Failing share by rule over time</h2>",
           "<p class=sub>Rows quarantined by a rule ÷ rows of its dataset extracted that day (by load date), for the "
           f"{len(series)} rules that failed most. Held batches are not counted until they load.</p>",
           svg_lines(series, title="failing share by rule")]
    rules = sorted(set(d.rule_totals) | set(d.finding_totals),
                   key=lambda r: -(d.rule_totals.get(r, 0) + d.finding_totals.get(r, 0)))
    if rules:
        out.append("<table><tr><th>rule</th><th>category</th><th>rows quarantined</th><th>rows flagged (finding)</th>"
                   "<th>what it checks</th><th>recent values (masked)</th></tr>")
        for r in rules:
            cat, doc = _rule_doc(r, docs)
            out.append(f"<tr><td><code>{esc(r)}</code></td><td>{esc(cat)}</td>"
                       f"<td class=n>{_num(d.rule_totals.get(r, 0))}</td><td class=n>{_num(d.finding_totals.get(r, 0))}</td>"
                       f"<td>{esc(doc)}</td><td>{esc(', '.join(v[:40] for v in d.examples.get(r, [])))}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _facilities_section(d: ReportData, docs: dict) -> str:
    ranked = sorted(d.facility_defects, key=lambda c: -d.facility_defects[c])[:TOP_FACILITIES]
    out = ["<h2>Facilities with most defects</h2>",
           "<p class=sub>Distinct rows quarantined in this window, by the facility that recorded them; the rate is per "
           "row the facility sent (loaded + quarantined) in the window.</p>"]
    if not ranked:
        out.append('<p class="empty">No row was quarantined in this window.</p>')
        return "".join(out)
    out.append(svg_stacked_bars([(_facility_label(c, d), {"quarantined rows": d.facility_defects[c]}) for c in ranked],
                                ["quarantined rows"], title="facilities with most defects"))
    out.append("<table><tr><th>facility</th><th>rows quarantined</th><th>rows with findings</th><th>rows loaded</th>"
               "<th>defect rate</th><th>most frequent rule</th></tr>")
    for c in ranked:
        loaded = sum(d.rows_by_facility.get(c, {}).values())
        bad = d.facility_defects[c]
        rule, n = d.facility_top_rule.get(c, ("", 0))
        out.append(f"<tr><td>{esc(_facility_label(c, d))}</td><td class=n>{_num(bad)}</td>"
                   f"<td class=n>{_num(d.facility_findings.get(c, 0))}</td><td class=n>{_num(loaded)}</td>"
                   f"<td class=n>{_pct(bad / (bad + loaded)) if bad + loaded else ''}</td>"
                   f"<td><code>{esc(rule)}</code> ({_num(n)}): {esc(_rule_doc(rule, docs)[1])}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _held_section(d: ReportData) -> str:
    out = ["<h2>Held batches</h2>"]
    if not d.held:
        out.append('<p class="empty">No batch is held.</p>')
        return "".join(out)
    out.append("<p class=sub>The circuit breaker held these: too large a share of their rows failed validation, so "
               "nothing of them loaded and their stream's watermark did not move. Other sources went on.</p>")
    by_batch: dict[str, list[AuditRow]] = defaultdict(list)
    for a in d.held:
        by_batch[a.batch_id].append(a)
    for batch_id, rows in by_batch.items():
        first = rows[0]
        reasons = "".join(f"<li>{esc(a.dataset)}: {_num(a.rows_quarantined)} of {_num(a.rows_extracted)} rows fail "
                          f"({_pct(a.failing_share)}, threshold {_pct(a.threshold)}) — {esc(a.message)}</li>"
                          for a in rows)
        b = esc(batch_id)
        out.append(f'<div class="todo"><b>{b}</b> · {esc(first.source_id)} / {esc(first.stream)} · validated '
                   f"{_when(first.validated_at)}<ul>{reasons}</ul>What to do:<ol>"
                   f"<li>See the failing rows: <code>countyhealth batches list --held</code>; the rules above say "
                   "what is wrong (docs/validation.md lists every rule).</li>"
                   "<li>If the source sent bad data, have the member fix it; the next extract brings the corrected "
                   "rows (the watermark did not move).</li>"
                   "<li>If our mapping is wrong (a new code, a date format), fix the source YAML, then "
                   f"<code>countyhealth batches revalidate {b} --load</code>.</li>"
                   "<li>If the data is right and the rule too strict for this case, load it anyway (failing rows "
                   f"still go to quarantine): <code>countyhealth batches release {b} --reason \"…\" --load</code>.</li>"
                   "</ol></div>")
    return "".join(out)


def _data_docs_link(out_path: Path | None) -> str:
    index = settings.reports_dir() / "data_docs" / "index.html"
    if not index.exists():
        return ""
    href = os.path.relpath(index, out_path.parent) if out_path else "data_docs/index.html"
    return (f'<p class=sub>Great Expectations Data Docs of the validations (every suite and batch): '
            f'<a href="{html.escape(Path(href).as_posix())}">data_docs/index.html</a> (a separate GX site).</p>')


def render(d: ReportData, out_path: Path | None = None) -> str:
    docs = _rule_docs()
    body = "".join([
        f"<h1>countyhealth run report · 运行报告</h1><p class=sub>Generated {d.generated_at:%Y-%m-%d %H:%M} UTC · "
        f"window: the last {d.days} days (since {d.since:%Y-%m-%d %H:%M} UTC) · warehouse: {esc(d.warehouse)}</p>",
        _summary_section(d), _held_section(d), _rows_section(d), _rules_section(d, docs), _facilities_section(d, docs),
        _data_docs_link(out_path),
    ])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>countyhealth run report '
            f"{d.generated_at:%Y-%m-%d}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n")


def write_report(warehouse, out_path: Path | str | None = None, *, days: int = 30,
                 now: dt.datetime | None = None) -> Path:
    """Write the run report; ``warehouse`` is a :class:`~countyhealth.warehouse.Warehouse` or a URL."""
    from countyhealth.warehouse import Warehouse

    wh = warehouse if hasattr(warehouse, "engine") else Warehouse(warehouse)
    out = Path(out_path or settings.reports_dir() / "run-report.html")
    text = render(gather(wh, days=days, now=now), out)
    if out.parent == settings.reports_dir():
        privacy.private_data_dir()
    privacy.private_dir(out.parent)
    privacy.write_private(out, text)  # 0600: names, facilities and defects of residents' records
    return out


@click.command("report")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML (default: <data dir>/reports/run-report.html).")
@click.option("--url", default=None, help="Warehouse URL (default: COUNTYHEALTH_WAREHOUSE_URL or the DuckDB file).")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1), help="History window in days.")
def report_command(out_path: Path | None, url: str | None, days: int) -> None:
    """Write the self-contained HTML run report (opens offline)."""
    from countyhealth.warehouse import Warehouse

    try:
        path = write_report(Warehouse(url), out_path, days=days)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}")
