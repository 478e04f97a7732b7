"""`countyhealth identity link INPUT.csv --output OUTPUT.csv`: the pipeline's EMPI on a plain file — every
record gets a person, the guards hold, odd files give clear errors."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from countyhealth.identity.commands import identity as identity_cli

HEADER = "record_id,source,name,sex,birth_date,id_number,phone,address\n"


def run(tmp_path, text: str, *, encoding="utf-8"):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(text.encode(encoding))
    result = CliRunner().invoke(identity_cli, ["link", str(src), "--output", str(out)])
    rows = list(csv.DictReader(out.open(encoding="utf-8"))) if out.exists() else []
    return result, {r["record_id"]: r for r in rows}


def test_records_of_one_resident_join_and_others_stay_apart(tmp_path):
    result, rows = run(tmp_path, HEADER + "\n".join([
        "h1,his_h350125001,陈伟,1,1980-01-01,350125198001011238,13905912345,福建省福州市永泰县樟城镇东门村12号",
        "p1,public_health,陳 偉,1,1980-01-01,350125198001011238,,樟城镇东门村12号",  # traditional, a space
        "c1,contracts,陈伟,1,1980-01-01,350125800101123,13905912345,",  # the same ID in its 15-digit form
        # twins: same birth date, household and phone, different given names, no IDs
        "t1,his_w350125101,林晓燕,2,2015-06-01,,13800000001,樟城镇东门村3号",
        "t2,his_w350125101,林晓婷,2,2015-06-01,,13800000001,樟城镇东门村3号",
        # two valid, different IDs never merge however alike the rest is
        "d1,his_h350125001,王芳,2,1990-02-03,350125199002030021,,",
        "d2,public_health,王芳,2,1990-02-03,350125199002030048,,",
        "e1,,,,,,,",  # nothing but an id: still a person of its own
    ]) + "\n")
    assert result.exit_code == 0, result.output
    assert set(rows) == {"h1", "p1", "c1", "t1", "t2", "d1", "d2", "e1"}
    person = {k: r["person_id"] for k, r in rows.items()}
    assert person["h1"] == person["p1"] == person["c1"]
    assert len({person["t1"], person["t2"], person["d1"], person["d2"], person["e1"], person["h1"]}) == 6
    assert rows["e1"]["link"] == "new" and rows["p1"]["link"] in ("deterministic", "probabilistic")
    assert "8 records → 6 persons" in result.output and "the reviewed model" in result.output


def test_missing_columns_other_name_styles_and_unknown_columns_are_fine(tmp_path):
    result, rows = run(tmp_path, "record_id,name,birth_date,note\n"
                                 "1,Michaela Neumann,19151111,x\n2,michaela neumann,1915-11-11,y\n"
                                 "3,阿依古丽·买买提,1988-04-05,z\n4,阿依古丽 · 买买提,1988-04-05,\n")
    assert result.exit_code == 0, result.output
    assert set(rows) == {"1", "2", "3", "4"} and all(r["person_id"].startswith("P") for r in rows.values())
    assert "ignored columns: note" in result.output


@pytest.mark.parametrize("text, encoding, message", [
    ("name,sex\n陈伟,1\n", "utf-8", "no record_id column"),
    (HEADER + "a,,陈伟,,,,,\na,,陈伟,,,,,\n", "utf-8", "record_id repeats"),
    (HEADER + ",,陈伟,,,,,\n", "utf-8", "record_id is empty on line(s) 2"),
    (HEADER + "a,,陈伟,,,,,\n", "gb18030", "not UTF-8"),
])
def test_bad_files_get_an_error_naming_the_file_and_the_fix(tmp_path, text, encoding, message):
    result, rows = run(tmp_path, text, encoding=encoding)
    assert result.exit_code != 0 and message in result.output and "in.csv" in result.output
    assert rows == {}


def test_names_and_addresses_in_latin_letters_and_other_identifiers_link(tmp_path):
    """Data unlike the county's: family name first in one file and last in another, a passport-style number
    typed with one digit wrong, an address in words with a typo — one person; a namesake elsewhere is not."""
    result, rows = run(tmp_path, HEADER + "\n".join([
        "a1,clinic,Ambrosia Samplton,,1940-04-26,E1298044,,28 Moorehead Place Goodwood 4701 SA",
        "a2,hospital,SAMPLTON AMBROSIA,,1940-04-26,E1298004,,28 moorehead place goodowod 4701 sa",
        "b1,hospital,Ambrosia Samplton,,1971-09-02,K5550001,,3 Hill Road Hobart 7000 TAS",
    ]) + "\n")
    assert result.exit_code == 0, result.output
    person = {k: r["person_id"] for k, r in rows.items()}
    assert person["a1"] == person["a2"] != person["b1"]


def test_fitting_to_the_file_needs_enough_records(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(HEADER + "a,,陈伟,1,1980-01-01,,,\n", encoding="utf-8")
    result = CliRunner().invoke(identity_cli, ["link", str(src), "--output", str(out), "--model", "fit"])
    assert result.exit_code != 0 and "too few to fit the model" in result.output and not out.exists()


def _features(names, ids):
    import pandas as pd

    from countyhealth.identity import features, file_link

    frame = pd.DataFrame({"record_id": [str(i) for i in range(len(names))], "name": names, "id_number": ids})
    return features.build(file_link.to_person_rows(frame))


def test_the_reviewed_model_is_kept_for_county_records_and_fitted_for_others():
    """``--model auto``: Chinese names and resident IDs are what the reviewed parameters know; Latin names or
    other numbers are not — fitted, when the file is large enough for EM."""
    from countyhealth.identity import file_link

    county = _features(["陈伟", "林秀英", "Zhang Wei"], ["350125198001011238", None, "11010519491231002X"])
    abroad = _features(["rachael dent", "isabella everett", "陈伟"], ["1683994", "6653129", None])
    chinese_names_other_ids = _features(["陈伟", "林秀英"], ["1683994", "6653129"])
    assert file_link.looks_like_the_county(county)
    assert not file_link.looks_like_the_county(abroad)
    assert not file_link.looks_like_the_county(chinese_names_other_ids)
    assert file_link.looks_like_the_county(_features([None, None], [None, None]))  # nothing to say otherwise
    _, chosen = file_link.choose_settings(abroad, "auto")
    assert chosen == "reviewed"  # three records: too few to fit, so the reviewed model after all
    with pytest.raises(file_link.LinkInputError, match="unknown"):
        file_link.choose_settings(county, "best")
