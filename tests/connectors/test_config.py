"""Source YAMLs: the committed ones load, errors name file/key/fix, connections resolve the Airflow way."""

from __future__ import annotations

import json
import textwrap

import pytest

from countyhealth import settings
from countyhealth.connectors import connector_class, known_kinds, scaffold
from countyhealth.connectors.config import (
    ConnectionNotFound,
    SourceConfigError,
    load_source,
    load_sources,
    parse_uri,
    resolve_connection,
    source_files,
)
from countyhealth.connectors.typing import ConnectionRef


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_every_committed_source_loads_and_maps_all_required_fields():
    sources = load_sources(settings.project_home() / "sources")
    assert {"public_health", "contracts", "registry"} <= set(sources)
    his = [s for s in sources if s.startswith("his_")]
    assert len(his) == 23  # 3 county-level hospitals + 20 township centres, the default county
    lab = sources["his_w350125101"].streams["lab_results"]
    assert lab.datasets == ["lab_result"] and sources["his_w350125101"].code_system == "his_vendor_b"
    assert sources["contracts"].streams["contracts"].datasets == ["contract", "person"]
    # templates are not sources
    assert not any("_vendors" in str(p) for p in source_files(settings.project_home() / "sources"))


def test_kinds_are_registered_through_entry_points():
    assert {"sql", "rest", "file", "hl7"} <= set(known_kinds())
    from importlib.metadata import entry_points

    assert "hl7" in {ep.name for ep in entry_points(group="countyhealth.connectors")}
    assert connector_class("hl7").kind == "hl7"


def test_unknown_key_names_file_key_and_fix(tmp_path):
    path = write(tmp_path, "his_x.yaml", """
        kind: sql
        connection: {conn_id: x}
        streams:
          labs:
            table: LAB
            cursr: {column: UPDATE_TIME}
            dataset: lab_result
            fields: {source_record_id: ID}
    """)
    with pytest.raises(SourceConfigError) as e:
        load_source(path)
    assert "sources/his_x.yaml: streams.labs.cursr" in str(e.value) and "spelling" in str(e.value)


def test_missing_required_mapping_is_a_config_error_not_a_crash(tmp_path):
    path = write(tmp_path, "his_x.yaml", """
        kind: sql
        facility_code: H1
        connection: {conn_id: x}
        streams:
          labs:
            table: LAB
            dataset: lab_result
            fields:
              source_record_id: ID
              report_numbr: NO
    """)
    with pytest.raises(SourceConfigError) as e:
        load_source(path)
    text = str(e.value)
    assert "streams.labs.fields.report_numbr: lab_result has no field 'report_numbr'" in text
    assert "did you mean" in text and "report_number" in text
    for required in ("person_source_record_id", "report_at", "item_code_local", "result_status"):
        assert f"streams.labs.fields.{required}: required field of lab_result is not mapped" in text
    assert "fields.facility_code" not in text  # defaulted from the source's facility_code


def test_unknown_kind_and_transform_and_bad_yaml(tmp_path):
    with pytest.raises(SourceConfigError, match="unknown connector kind 'ftp'.*use one of .*hl7"):
        load_source(write(tmp_path, "src_a.yaml", "kind: ftp\nstreams: {}\n"))
    with pytest.raises(SourceConfigError, match="line 3.*not valid YAML"):
        load_source(write(tmp_path, "src_b.yaml", "kind: sql\nstreams: [a\n"))
    with pytest.raises(SourceConfigError, match="not a valid source id"):
        load_source(write(tmp_path, "Bad-Name.yaml", "kind: sql\n"))


def test_extends_merges_a_template_and_env_vars_interpolate(tmp_path, monkeypatch):
    write(tmp_path, "_vendors/v.yaml", """
        kind: file
        streams:
          s:
            path: ${INBOX_ROOT}/in
            dataset: facility
            fields: {source_record_id: code, name: name, level: level}
    """)
    path = write(tmp_path, "member_a.yaml", "extends: _vendors/v.yaml\nfacility_code: H1\n")
    with pytest.raises(SourceConfigError, match="INBOX_ROOT is not set"):
        load_source(path, tmp_path)
    monkeypatch.setenv("INBOX_ROOT", "/srv/x")
    src = load_source(path, tmp_path)
    assert src.facility_code == "H1" and src.streams["s"].path == "/srv/x/in" and src.source_id == "member_a"
    write(tmp_path, "member_b.yaml", "extends: _vendors/nope.yaml\n")
    with pytest.raises(SourceConfigError, match="template '_vendors/nope.yaml' not found"):
        load_source(tmp_path / "member_b.yaml", tmp_path)


def test_connections_resolve_like_airflow(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HIS_A", "postgres://his:s%40cret@db.example:5433/his")
    conn = resolve_connection(ConnectionRef(conn_id="his_a"))
    assert conn.sqlalchemy_url() == "postgresql+psycopg://his:s%40cret@db.example:5433/his"
    assert "s@cret" not in repr(conn)
    monkeypatch.setenv("AIRFLOW_CONN_PH", json.dumps({"conn_type": "http", "host": "10.0.0.5", "port": 8765,
                                                      "login": "key", "password": "secret"}))
    ph = resolve_connection(ConnectionRef(conn_id="ph"))
    assert ph.base_url() == "http://10.0.0.5:8765" and (ph.login, ph.password) == ("key", "secret")
    assert parse_uri("sqlite:////srv/his/a.sqlite").sqlalchemy_url() == "sqlite:////srv/his/a.sqlite"
    monkeypatch.setenv("LAB_URL", "sqlite:///rel.sqlite")
    assert resolve_connection(ConnectionRef(url_env="LAB_URL")).sqlalchemy_url() == "sqlite:///rel.sqlite"
    monkeypatch.delenv("LAB_URL")
    with pytest.raises(ConnectionNotFound, match="LAB_URL is not set"):
        resolve_connection(ConnectionRef(url_env="LAB_URL"), where="sources/x.yaml")
    with pytest.raises(ConnectionNotFound, match="AIRFLOW_CONN_NOWHERE"):
        resolve_connection(ConnectionRef(conn_id="nowhere"), where="sources/x.yaml")


@pytest.mark.parametrize("kind", ["sql", "rest", "file", "hl7"])
def test_scaffolds_are_valid_source_files(tmp_path, kind):
    text = scaffold.render(kind, "new_member", facility_code="H9").replace("SOURCE_COLUMN", "col")
    src = load_source(scaffold.write(tmp_path / "new_member.yaml", text), tmp_path)
    assert src.kind == kind and src.facility_code == "H9"
    with pytest.raises(FileExistsError):
        scaffold.write(tmp_path / "new_member.yaml", text)


def test_yaml_no_and_y_stay_strings(tmp_path):
    path = write(tmp_path, "his_y.yaml", """
        kind: sql
        facility_code: H1
        connection: {conn_id: x}
        streams:
          labs:
            table: LAB
            dataset: lab_result
            fields:
              source_record_id: ID
              report_number: NO
              person_source_record_id: PID
              report_at: T
              item_code_local: ITEM
              result_status: {column: ST, map: {Y: final, N: preliminary}}
    """)
    fields = load_source(path).streams["labs"].maps[0].fields
    assert fields["report_number"].column == "NO"
    assert fields["result_status"].map == {"Y": "final", "N": "preliminary"}


@pytest.mark.parametrize("kind", ["sql", "rest", "file"])
def test_a_scaffold_maps_one_stream_to_several_datasets(tmp_path, kind):
    """A contract platform's export carries the resident too: one stream, a contract map and a person map."""
    text = scaffold.render(kind, "qianyue_api", dataset=["contract", "person"], facility_code="W1")
    assert text.count("- dataset: ") == 2 and "maps:" in text
    src = load_source(scaffold.write(tmp_path / "qianyue_api.yaml", text.replace("SOURCE_COLUMN", "col")), tmp_path)
    [stream] = src.streams.values()
    assert stream.datasets == ["contract", "person"]
    assert {"contract_number", "sign_date"} <= set(stream.maps[0].fields) and "name" in stream.maps[1].fields
