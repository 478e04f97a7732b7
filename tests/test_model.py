"""The canonical model is complete, documented and consistent with the code sets."""

import pyarrow as pa
import pytest

from countyhealth import codes, model

EXPECTED = {"facility", "person", "encounter", "lab_result", "exam_report", "chronic_followup", "contract"}


def test_all_datasets_present_with_lineage():
    assert set(model.DATASET_NAMES) == EXPECTED
    for dataset in model.DATASET_NAMES:
        names = model.schema(dataset).names
        assert names[:4] == ["source_id", "source_record_id", "facility_code", "batch_id"], dataset
        assert len(names) == len(set(names)), f"duplicate field in {dataset}"


def test_every_field_documented_and_code_sets_exist():
    for dataset in model.DATASET_NAMES:
        for field in model.schema(dataset):
            meta = field.metadata
            assert meta[b"doc"].strip(), (dataset, field.name)
            if b"code_set" in meta:
                assert meta[b"code_set"].decode() in codes.ALL, (dataset, field.name)
            if b"de" in meta:
                assert meta[b"de"].decode().startswith("DE"), (dataset, field.name)


def test_ws445_elements_cited():
    lab = {f.name: f.de for f in model.fields("lab_result")}
    assert lab["report_number"] == "DE01.00.018.00"
    assert lab["value_numeric"] == "DE04.30.015.00"
    assert lab["specimen_number"] == "DE01.00.003.00"
    exam = {f.name: f.de for f in model.fields("exam_report")}
    assert exam["findings"] == "DE04.50.131.00" and exam["impression"] == "DE04.50.132.00"
    person = {f.name: f.de for f in model.fields("person")}
    assert person["id_number"] == "DE02.01.030.00" and person["health_record_number"] == "DE01.00.009.00"


def test_conform_fills_missing_and_casts():
    t = pa.table({"source_id": ["s"], "source_record_id": ["1"], "sbp": pa.array([150], pa.int64())})
    out = model.conform("chronic_followup", t)
    assert out.schema.names == model.schema("chronic_followup").names
    assert out.column("sbp").type == pa.int32()
    assert out.column("dbp").null_count == 1


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="lab_result"):
        model.schema("labs")
