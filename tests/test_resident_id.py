"""GB 11643 resident ID rules."""

import datetime as dt
import random

import numpy as np
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


def _mutations(rng: random.Random, n: int) -> list:
    """Well-formed IDs and the ways they arrive damaged: every kind of whitespace, full-width and other scripts'
    digits, a lower-case x, the 15-digit form, impossible and future birth dates, wrong check characters."""
    out: list = [None, float("nan"), "", " ", "\u3000", 350125198001011234, "abc", "X" * 18, "000000000000000000"]
    for _ in range(n):
        born = dt.date(1870, 1, 1) + dt.timedelta(days=rng.randrange(0, 60000))  # some before 1880, some future
        good = rid.make(f"{rng.randrange(11, 66)}{rng.randrange(10**4):04d}", born, rng.randrange(1000))
        pick = rng.randrange(12)
        if pick == 0:
            good = good[:17] + rng.choice("0123456789Xx")
        elif pick == 1:
            good = good[:6] + good[8:17]  # the old form
        elif pick == 2:
            good = good[:10] + f"{rng.randrange(0, 40):02d}" + good[12:]  # month 00, 13..39
        elif pick == 3:
            good = good.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"})
        elif pick == 4:
            at = rng.randrange(19)
            good = good[:at] + rng.choice([" ", "\t", "-", "\u3000", "\x0b", "\x1c", "/", "\xa0"]) + good[at:]
        elif pick == 5:
            good = good[:-1]
        elif pick == 6:
            good = good.replace("1", "\u0661")  # Arabic-Indic one: a digit to Python, not ASCII
        out.append(good)
    return out


def test_parse_many_gives_parse_s_answers_for_every_value():
    values = _mutations(random.Random(5), 6000)
    today = dt.date(2026, 1, 1)
    got = rid.parse_many(values + values[::7], today=today)  # repeats come out alike
    for i, v in enumerate(values + values[::7]):
        p = rid.parse(v if isinstance(v, str) else (None if v is None or v != v else str(v)), today=today)
        assert (got.id18[i], bool(got.valid[i]), bool(got.was_15[i])) == (p.id18, p.valid, p.was_15), repr(v)
        if p.valid:
            assert got.birth_date[i] == np.datetime64(p.birth_date, "D") and got.sex[i] == p.sex, repr(v)
        else:
            assert np.isnat(got.birth_date[i]) and got.sex[i] is None, repr(v)
    assert 0.2 < got.valid.mean() < 0.8  # the variants exercise both answers


def test_parse_many_of_nothing():
    got = rid.parse_many([])
    assert len(got.id18) == len(got.valid) == len(got.birth_date) == 0
