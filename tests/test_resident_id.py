"""GB 11643 resident ID rules."""

import datetime as dt

import pytest

from countyhealth import privacy
from countyhealth import resident_id as rid

# Valid IDs built from the published algorithm (the standard's worked example is 11010519491231002X).
KNOWN_VALID = ["11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_valid(number):
    assert rid.parse(number).valid


def test_check_character_and_sex_parity():
    number = rid.make("350125", dt.date(1956, 7, 1), 37)
    parsed = rid.parse(number)
    assert parsed.valid and parsed.sex == "1" and parsed.birth_date == dt.date(1956, 7, 1)
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    assert rid.parse(wrong).problem == "check_char"


def test_pre_1980_ids_accepted_unlike_stdnum():
    # region 350125 (Yongtai) existed only from the 1980s coding; stdnum rejects such IDs — we must not
    assert rid.parse(rid.make("350125", dt.date(1938, 2, 11), 2)).valid


def test_fifteen_digit_upgrade():
    id18 = rid.make("350125", dt.date(1965, 5, 4), 123)
    id15 = id18[:6] + id18[8:17]
    parsed = rid.parse(id15)
    assert parsed.valid and parsed.was_15 and parsed.id18 == id18


def test_normalises_lowercase_x_and_fullwidth():
    assert rid.parse("11010519491231002x").valid
    assert rid.parse("１１０１０５１９４９１２３１００２Ｘ").id18 == "11010519491231002X"


@pytest.mark.parametrize("bad,problem", [("", "missing"), (None, "missing"), ("12345", "format"),
                                        ("350125199913450011", "birth_date"), ("35012520990101001X", "birth_date")])
def test_bad_input_never_raises(bad, problem):
    assert rid.parse(bad, today=dt.date(2026, 1, 1)).problem == problem


def test_masks_hide_the_middle():
    assert privacy.mask_id("11010519491231002X") == "110**************X"
    assert privacy.mask_phone("13912345678") == "139******78"


def test_scrub_masks_ids_and_mobiles_in_free_text():
    text = "row 7: id 11010519491231002X and 350125198001011234? phone 13912345678, code 12345"
    out = privacy.scrub(text)
    assert "11010519491231002X" not in out and "13912345678" not in out
    assert "110**************X" in out and "139******78" in out and "code 12345" in out


def test_keyed_hash_and_encryption_round_trip():
    h1 = privacy.keyed_hash("11010519491231002X", "id_number")
    assert h1 == privacy.keyed_hash("11010519491231002X", "id_number")
    assert h1 != privacy.keyed_hash("11010519491231002X", "phone")
    token = privacy.encrypt("13912345678")
    assert token != "13912345678" and privacy.is_encrypted(token)
    assert privacy.decrypt(token) == "13912345678"
    assert privacy.decrypt("plain") == "plain"
    # a warehouse written before values were sealed holds Fernet tokens: they still open, one by one or in bulk
    legacy = privacy._keys(privacy._secret())[1].encrypt(b"350125198001011238").decode()
    assert privacy.is_encrypted(legacy) and privacy.decrypt(legacy) == "350125198001011238"
    assert privacy.decrypt_many([legacy, token, "plain", None]) == {legacy: "350125198001011238",
                                                                     token: "13912345678", "plain": "plain"}


def test_keyed_hashes_in_bulk_equal_one_at_a_time():
    values = ["11010519491231002X", "13912345678", "13912345678", None, ""]
    bulk = privacy.keyed_hashes(values, "phone")
    assert set(bulk) == {"11010519491231002X", "13912345678"}
    assert all(bulk[v] == privacy.keyed_hash(v, "phone") for v in bulk)
    assert bulk["13912345678"] != privacy.keyed_hash("13912345678", "id_number")


def test_sealed_ids_are_deterministic_open_with_the_key_and_refuse_another(monkeypatch):
    ids = ["11010519491231002X", "350125198001011238", "11010519491231002X", None, ""]
    sealed = privacy.seal_many(ids)
    assert set(sealed) == {"11010519491231002X", "350125198001011238"}
    assert sealed == privacy.seal_many(reversed(ids))  # deterministic: equal IDs, equal tokens
    assert all(v[:6] not in t and v[-6:] not in t for v, t in sealed.items())
    assert privacy.unseal_many(sealed.values()) == {t: v for v, t in sealed.items()}
    monkeypatch.setenv(privacy.ENV_KEY, "another-key-" + "k" * 30)
    with pytest.raises(ValueError, match=privacy.ENV_KEY) as err:
        privacy.unseal_many(sealed.values())
    assert "1101051949" not in str(err.value)
    with pytest.raises(ValueError, match="migrat"):  # a value stored before identity records kept sealed IDs
        privacy.unseal_many(["11010519491231002X"])
