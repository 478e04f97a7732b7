"""``countyhealth sources new``: write a commented source YAML to start from (as dlt's ``new_source``).

The templates are real, complete YAML for each built-in kind; a test loads every one of them after filling
the placeholders, so a scaffold never produces a file that ``sources check`` rejects for its structure.
A plug-in kind may offer its own by defining ``scaffold_template`` on its Connector class.
"""

from __future__ import annotations

from pathlib import Path

from countyhealth import model

_HEADER = """\
# {name}: {description}
# Written by `countyhealth sources new --kind {kind}`. Edit, then run `countyhealth sources check {name}`.
# Canonical fields of each dataset: `countyhealth sources fields <dataset>` (required ones are marked).
# Credentials never go here: `connection` names an Airflow connection (or AIRFLOW_CONN_<ID> env var).
"""

TEMPLATES = {
    "sql": """\
kind: sql
description: {description}
facility_code: {facility_code}            # the member (机构代码); fills facility_code on every row
code_system: {code_system}                # local lab/exam codes (config/harmonisation maps them)
connection: {{conn_id: {conn_id}}}        # e.g. `airflow connections add {conn_id} --conn-uri postgres://...`
streams:
  {stream}:
    table: {table}                        # or `query: SELECT ...` (the incremental predicate is added)
    cursor:                               # incremental on the row's last-update time
      column: UPDATE_TIME
      format: "%Y-%m-%d %H:%M:%S"         # how the source writes it (omit for real timestamps / ISO)
      overlap: 15m                        # re-read a little to absorb member clocks running behind
{{mapping}}
""",
    "rest": """\
kind: rest
description: {description}
facility_code: {facility_code}
connection: {{conn_id: {conn_id}}}        # http connection: host, port, login = app key, password = secret
auth: {{type: bearer_token, token_path: /api/v1/auth/token}}   # or {{type: api_key, name: X-API-Key}}, basic, none
paginator: {{type: page_number, page_param: page, size_param: page_size, size: 200, total_field: data.total}}
timeout: 30                               # seconds per request
retry: {{attempts: 6, backoff: 1.0, max_backoff: 60}}   # 5xx and timeouts; 429 waits for Retry-After
streams:
  {stream}:
    path: /api/v1/{stream}
    records_field: data.records           # dotted path to the list of records in a response
    since_param: updated_since            # the API's incremental parameter
    cursor: {{column: updated_at, format: "%Y-%m-%dT%H:%M:%S"}}
{{mapping}}
""",
    "file": """\
kind: file
description: {description}
facility_code: {facility_code}
streams:
  {stream}:
    path: ${{COUNTYHEALTH_COUNTY_DIR}}/{name}/inbox   # where the member drops its exports
    pattern: "*.csv"
    format: auto                          # csv, xlsx or jsonl; auto goes by extension
    encoding: auto                        # UTF-8 if the file is UTF-8, else GB18030
{{mapping}}
""",
    "hl7": """\
kind: hl7
description: {description}
facility_code: {facility_code}
streams:
  {stream}:
    path: ${{COUNTYHEALTH_COUNTY_DIR}}/{name}/hl7   # ORU^R01 files from the LIS interface engine
    pattern: "*.hl7"
    primary_key: [MSH.10, OBX.1]          # message control id + observation set id
    dataset: lab_result
    fields:
      person_source_record_id: PID.3.1
      report_number: OBR.3.1
      report_at: {{column: OBR.22, format: "%Y%m%d%H%M%S"}}
      collected_at: {{column: OBR.7, format: "%Y%m%d%H%M%S"}}
      item_code_local: OBX.3.1
      item_name_local: OBX.3.2
      value_numeric: {{column: OBX.5, transform: [numeric_part]}}
      value_operator: {{column: OBX.5, transform: [comparator]}}
      value_text: OBX.5
      unit: OBX.6
      reference_range: OBX.7
      abnormal_flag: {{column: OBX.8, transform: [abnormal_arrow]}}
      result_status: {{column: OBX.11, map: {{F: final, C: corrected, P: preliminary, X: cancelled}}}}
""",
}


def _field_lines(dataset: str, indent: str = "      ") -> str:
    lines = []
    for f in model.fields(dataset):
        if f.name in ("source_id", "batch_id", "facility_code"):
            continue
        mark = "REQUIRED " if f.required else ""
        target = "SOURCE_COLUMN" if f.required else "  # SOURCE_COLUMN"
        if f.required:
            lines.append(f"{indent}{f.name}: {target:<22}# {mark}{f.doc}")
        else:
            lines.append(f"{indent}# {f.name}: SOURCE_COLUMN  — {f.doc}")
    return "\n".join(lines)


def _mapping(datasets: list[str]) -> str:
    """One dataset: ``dataset`` + ``fields``; several from one stream (a contract export carrying the resident):
    a ``maps`` list, one entry per dataset, each with every field of its dataset commented."""
    if len(datasets) == 1:
        return (f"    dataset: {datasets[0]}\n"
                "    fields:                               # canonical field: source column (or {column, format, map, ...})\n"
                + _field_lines(datasets[0]))
    blocks = ["    maps:                                 # one stream, several canonical datasets"]
    for ds in datasets:
        blocks.append(f"      - dataset: {ds}\n        fields:\n" + _field_lines(ds, indent="          "))
    return "\n".join(blocks)


def render(kind: str, name: str, *, dataset: str | list[str] = "lab_result", stream: str | None = None,
           description: str | None = None, facility_code: str = "FACILITY_CODE", conn_id: str | None = None,
           table: str = "TABLE_NAME", code_system: str | None = None) -> str:
    datasets = [dataset] if isinstance(dataset, str) else list(dataset)
    dataset = datasets[0]
    from countyhealth.connectors import connector_class

    if kind in TEMPLATES:
        body = TEMPLATES[kind]
    else:
        body = getattr(connector_class(kind), "scaffold_template", None)
        if body is None:
            raise KeyError(f"kind {kind!r} offers no template; write the YAML by hand (see docs/connectors.md)")
    values = dict(name=name, kind=kind, dataset=dataset, stream=stream or dataset.replace("_result", "_results"),
                  description=description or f"{name} ({kind} source)", facility_code=facility_code,
                  conn_id=conn_id or name, table=table, code_system=code_system or f"{name}_codes",
                  fields=_field_lines(dataset))
    return _HEADER.format(**values) + body.format(**values).replace("{mapping}", _mapping(datasets))


def write(path: Path, text: str) -> Path:
    if path.exists():
        raise FileExistsError(f"{path.name} exists already; choose another name or edit it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
