"""Personal identifiers at rest and in output: masking, keyed hashes, encryption. One home for all three.

Resident ID numbers and phones never appear in logs, errors or reports (use :func:`mask_id` /
:func:`mask_phone`). In the warehouse they are stored encrypted beside a keyed hash (HMAC-SHA256) of the
normalised value, so records can be joined on the hash without anyone reading the number.

Encryption is AES-SIV (RFC 5297; ``cryptography``'s ``AESSIV``, a package Airflow already depends on): deterministic
authenticated encryption. A value always seals to the same token, so the ciphertext reveals which records share a
value — what the keyed hash beside it reveals already — and nothing more; it opens in ~2 µs against Fernet's ~25,
which matters because each night decrypts the IDs of every new record to standardise them, and the identity tables
keep each linked record's standardised ID sealed (:func:`seal_many`) so that a night compares its candidates' IDs
digit by digit (one typed wrong, two swapped) without rebuilding them. Values written by earlier versions as Fernet
tokens (AES-128-CBC + HMAC) still decrypt.

The key comes from ``COUNTYHEALTH_SECRET_KEY`` (any string of 32+ characters; in Airflow, set it as an
environment variable or from a secrets backend). Without it a random key is created once in
``<data dir>/secret.key`` (mode 0600) so the demo and tests work; a production deployment must set the
variable, since losing the key makes the encrypted columns unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from functools import lru_cache

from countyhealth import settings

log = logging.getLogger(__name__)

ENV_KEY = "COUNTYHEALTH_SECRET_KEY"
_FERNET_PREFIX = "gAAAA"  # every Fernet token starts with version byte 0x80 + timestamp -> this base64 prefix
_SEALED_PREFIX = "s1."  # the sealing scheme's version, so that a later scheme can be told apart


def _secret() -> bytes:
    # keyed by the variables that decide it, so a test (or a process) switching data dirs gets the right key
    return _secret_for(os.environ.get(ENV_KEY), os.environ.get("COUNTYHEALTH_DATA_DIR"),
                       os.environ.get("COUNTYHEALTH_HOME"))


def private_dir(path) -> None:
    """Create a folder (and its missing parents) and make it 0700: no other account on the machine lists it."""
    from pathlib import Path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)


def private_data_dir():
    """The data dir, 0700. Everything countyhealth keeps — the warehouse file, landing, reports, the key — lives under
    it, so this one folder is the boundary whatever a library's own file modes (DuckDB's WAL, GX's Data Docs)."""
    path = settings.data_dir()
    private_dir(path)
    return path


def write_private(path, text: str) -> None:
    """Write a text file 0600, replacing it whole (a reader never sees half of it)."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # an existing tmp keeps its old mode through O_CREAT
    tmp.replace(path)


@lru_cache(maxsize=8)
def _secret_for(env: str | None, _data_env: str | None, _home_env: str | None) -> bytes:
    """The key for these settings (cached: the file is read once per process)."""
    if env:
        if len(env) < 32:
            raise ValueError(f"{ENV_KEY} must be at least 32 characters long (got {len(env)}); generate one with "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        return env.encode()
    path = settings.data_dir() / "secret.key"
    if not path.exists():
        private_data_dir()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        log.warning("no %s set: created a local key file for this data directory (set the variable in production)",
                    ENV_KEY)
    return path.read_text().strip().encode()


@lru_cache(maxsize=4)
def _keys(secret: bytes) -> tuple[bytes, object]:
    from cryptography.fernet import Fernet

    hash_key = hashlib.sha256(b"countyhealth-hash|" + secret).digest()
    enc_key = base64.urlsafe_b64encode(hashlib.sha256(b"countyhealth-enc|" + secret).digest())
    return hash_key, Fernet(enc_key)


def keyed_hash(value: str | None, purpose: str) -> str | None:
    """HMAC-SHA256 of ``value`` (already normalised by the caller), hex; ``purpose`` separates domains
    ("id_number", "phone") so equal strings of different kinds never collide."""
    if value is None or value == "":
        return None
    hash_key, _ = _keys(_secret())
    return hmac.new(hash_key, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def keyed_hashes(values, purpose: str) -> dict[str, str]:
    """:func:`keyed_hash` of many distinct values at once (the key is derived once; HMAC state copied, not
    rebuilt): value → hash, for blank values nothing."""
    hash_key, _ = _keys(_secret())
    base = hmac.new(hash_key, f"{purpose}|".encode(), hashlib.sha256)
    out = {}
    for value in values:
        if value is None or value == "" or value in out:
            continue
        h = base.copy()
        h.update(value.encode())
        out[value] = h.hexdigest()
    return out


def encrypt(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return seal_many([value])[value]


def decrypt(token: str | None) -> str | None:
    """Plaintext of a value written by :func:`encrypt`; values that were never encrypted pass through."""
    if token is None or not is_encrypted(token):
        return token
    return decrypt_many([token])[token]


def decrypt_many(tokens) -> dict[str, str]:
    """:func:`decrypt` of many values at once: distinct value → plaintext (the key derived once)."""
    tokens = [t for t in set(tokens) if t is not None]
    sealed = [t for t in tokens if t.startswith(_SEALED_PREFIX) and is_encrypted(t)]
    out = unseal_many(sealed)
    fernet = None
    for token in tokens:
        if token in out:
            continue
        if token.startswith(_FERNET_PREFIX) and is_encrypted(token):  # written before sealing replaced Fernet
            fernet = fernet or _keys(_secret())[1]
            out[token] = fernet.decrypt(token.encode()).decode()
        else:
            out[token] = token
    return out


@lru_cache(maxsize=4)
def _siv(secret: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    return AESSIV(hashlib.sha512(b"countyhealth-seal|" + secret).digest())  # AES-256-SIV takes a 512-bit key


def seal_many(values) -> dict[str, str]:
    """Distinct values → their sealed tokens (deterministic: a value always seals to the same token); blanks
    give nothing."""
    siv = _siv(_secret())
    out = {}
    for value in values:
        if value is None or value == "" or value in out:
            continue
        out[value] = _SEALED_PREFIX + base64.urlsafe_b64encode(siv.encrypt(value.encode(), None)).decode()
    return out


_URLSAFE = bytes.maketrans(b"-_", b"+/")  # (binascii reads the standard alphabet: twice as fast as urlsafe_b64decode)


def unseal_many(tokens) -> dict[str, str]:
    """Distinct sealed tokens → their values; a token that is not sealed, or sealed under another key, raises
    ``ValueError`` naming the fix (the key is ``COUNTYHEALTH_SECRET_KEY``)."""
    from cryptography.exceptions import InvalidTag

    siv = _siv(_secret())
    out = {}
    for token in tokens:
        if token is None or token in out:
            continue
        if not token.startswith(_SEALED_PREFIX):
            raise ValueError("an identity record holds an ID that is not sealed: run the warehouse migrations "
                             "(`countyhealth warehouse migrate`) and the next identity run re-derives it")
        try:
            out[token] = siv.decrypt(binascii.a2b_base64(token[len(_SEALED_PREFIX):].encode().translate(_URLSAFE)),
                                     None).decode()
        except InvalidTag:
            raise ValueError(f"a sealed value does not open with this key: {ENV_KEY} differs from the one the "
                             "warehouse was written with") from None
    return out


def is_sealed(value) -> bool:
    """Sealed by :func:`seal_many` (not an older Fernet token, not plaintext)."""
    return isinstance(value, str) and value.startswith(_SEALED_PREFIX) and is_encrypted(value)


def is_encrypted(value: str | None) -> bool:
    return bool(value) and ((value.startswith(_SEALED_PREFIX) and len(value) >= 27)  # prefix + a 16-byte tag
                            or (value.startswith(_FERNET_PREFIX) and len(value) > 80))


def mask_id(raw: str | None) -> str | None:
    """Mask an ID number for display: first 3 and last 1 characters (``350**************X``)."""
    if raw is None:
        return None
    text = str(raw)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 4) + text[-1]


def mask_phone(raw: str | None) -> str | None:
    """Mask a phone for display: first 3 and last 2 digits."""
    if raw is None:
        return None
    text = str(raw)
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


# 15- or 18-character resident IDs and mainland mobiles (1[3-9]x, 11 digits) inside free text
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")


def scrub(text: str) -> str:
    """Mask anything that looks like an ID number or a mobile phone inside free text (error messages,
    log lines built from source data)."""
    text = _ID_IN_TEXT.sub(lambda m: mask_id(m.group(1)), text)
    return _MOBILE_IN_TEXT.sub(lambda m: mask_phone(m.group(1)), text)


def protect_person(table):
    """Person rows as the warehouse keeps them: ID number and phone encrypted, keyed hashes of their
    normalised forms beside them (so identity and joins never need the plaintext at rest)."""
    import pyarrow as pa

    from countyhealth.standardise.person import normalise_ids_for_hash, normalise_phone

    ids = table.column("id_number").to_pylist()
    phones = table.column("phone").to_pylist()

    def sealed(values: list) -> list:
        tokens = seal_many(v for v in values if v and not is_encrypted(v))
        return [tokens.get(v, v) if v else v for v in values]

    def hashed(normal: list, purpose: str) -> list:
        hashes = keyed_hashes(normal, purpose)
        return [hashes.get(v) if v else None for v in normal]

    def kept(values: list, fresh: list, name: str) -> list:
        # a row sealed already (validation wrote it so) keeps the hash made from its plaintext then
        if name not in table.column_names:
            return fresh
        before = table.column(name).to_pylist()
        return [b if is_encrypted(v) else f for v, f, b in zip(values, fresh, before)]

    plain_ids = [None if is_encrypted(v) else v for v in ids]
    phone_of = {v: normalise_phone(v) for v in set(phones) if v and not is_encrypted(v)}  # each distinct once
    columns = {
        "id_number": sealed(ids),
        "phone": sealed(phones),
        "id_number_hash": kept(ids, hashed(normalise_ids_for_hash(plain_ids), "id_number"), "id_number_hash"),
        "phone_hash": kept(phones, hashed([phone_of.get(v) for v in phones], "phone"), "phone_hash"),
    }
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, pa.string()))
    return table


# ---- sealed before it touches disk (landing and validated files) -----------------------------------------
# Canonical fields holding a personal identifier (sealed whole) and free text (scrubbed of ID and phone patterns
# before the warehouse). One home: landing, validation and the loader ask here.
SENSITIVE_FIELDS = frozenset({"id_number", "phone", "health_card_number"})
HASH_TRANSFORMS = frozenset({"resident_id_hash", "resident_key_hash"})  # a raw column that is an ID in disguise
FREE_TEXT_FIELDS = frozenset({"address", "findings", "impression", "symptoms", "value_text", "diagnosis_name",
                              "note", "remarks"})

# In a landed file a sealed value is written as ⟪token⟫ inside its text (the whole value, or the span that looked
# like an ID number or a mobile inside free text). Reading the file opens every ⟪token⟫ again, so mapping and
# validation see exactly what the source gave.
_OPEN, _CLOSE = "\u27ea", "\u27eb"
_SEALED_SPAN = re.compile(_OPEN + r"(s1\.[A-Za-z0-9_=-]+)" + _CLOSE)
# an ID (15/18) or a mobile, digits possibly separated by one space or hyphen as people type them (138 1234 5678)
_SEAL_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])"
                           r"|(?<!\d)(1[3-9]\d[- ]?\d{4}[- ]?\d{4})(?!\d)")


def _seal_text_values(values, whole: bool) -> dict[str, str]:
    """distinct text → text as it is written to disk: the whole value sealed, or each ID/mobile span in it."""
    out = {}
    spans: set[str] = set()
    distinct = [v for v in set(values) if v]
    if whole:
        tokens = seal_many(distinct)
        return {v: _OPEN + tokens[v] + _CLOSE for v in distinct}
    hits = {}
    for v in distinct:
        found = [m.group(0) for m in _SEAL_IN_TEXT.finditer(v)]
        if found:
            hits[v] = found
            spans.update(found)
    tokens = seal_many(spans)
    for v in hits:
        out[v] = _SEAL_IN_TEXT.sub(lambda m: _OPEN + tokens[m.group(0)] + _CLOSE, v)
    return out


def seal_columns(table, sensitive_columns=()):
    """Raw rows as they may be written to disk: ``sensitive_columns`` sealed whole, every other text column's ID
    number and mobile spans sealed in place (``⟪s1.…⟫``). :func:`open_columns` gives back the exact rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, fld in enumerate(table.schema):
        if not (pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)) or fld.name.startswith("_"):
            continue
        col = table.column(i)
        whole = fld.name in sensitive_columns
        if not whole and not pc.any(pc.match_substring_regex(col, r"\d{11}|\d{3}[- ]\d{4}")).as_py():
            continue  # cheap pre-check: most columns (codes, dates) hold nothing to seal
        values = col.to_pylist()
        sealed = _seal_text_values(values, whole)
        if sealed:
            table = table.set_column(i, fld, pa.array([sealed.get(v, v) if v else v for v in values], fld.type))
    return table


def open_columns(table):
    """The inverse of :func:`seal_columns`, in memory only."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, fld in enumerate(table.schema):
        if not (pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)):
            continue
        col = table.column(i)
        if not pc.any(pc.match_substring(col, _OPEN)).as_py():
            continue
        values = col.to_pylist()
        distinct = {v for v in values if v and _OPEN in v}
        tokens = unseal_many({m.group(1) for v in distinct for m in _SEALED_SPAN.finditer(v)})
        opened = {v: _SEALED_SPAN.sub(lambda m: tokens[m.group(1)], v) for v in distinct}
        table = table.set_column(i, fld, pa.array([opened.get(v, v) if v else v for v in values], fld.type))
    return table


def scrub_free_text(table):
    """Free-text columns (:data:`FREE_TEXT_FIELDS`) with ID numbers and phones masked — irreversibly: what the
    warehouse keeps of a note is the note, never a number in it."""
    import pyarrow as pa

    for name in FREE_TEXT_FIELDS & set(table.column_names):
        i = table.schema.get_field_index(name)
        values = table.column(i).to_pylist()
        cleaned = {v: scrub_all(v) for v in set(values) if v}
        if any(k != c for k, c in cleaned.items()):
            table = table.set_column(i, table.schema.field(i), pa.array([cleaned.get(v, v) if v else v
                                                                         for v in values], pa.string()))
    return table


def scrub_all(text: str) -> str:
    """:func:`scrub`, also for mobiles typed with separators (138 1234 5678)."""
    text = scrub(text)
    return _SEAL_IN_TEXT.sub(lambda m: mask_id(m.group(0)) if m.group(1) else mask_phone(m.group(0)), text)


def protect_canonical(dataset: str, table):
    """Canonical rows as validation writes them to disk and the loader takes them: identifiers sealed with their
    keyed hashes (person), other sensitive fields sealed, free text scrubbed. Idempotent."""
    import pyarrow as pa

    if {"id_number", "phone"} <= set(table.column_names) and "id_number_hash" in table.column_names:
        table = protect_person(table)
    for name in (SENSITIVE_FIELDS - {"id_number", "phone"}) & set(table.column_names):
        i = table.schema.get_field_index(name)
        values = table.column(i).to_pylist()
        tokens = seal_many(v for v in values if v and not is_encrypted(v))
        table = table.set_column(i, table.schema.field(i),
                                 pa.array([tokens.get(v, v) if v else v for v in values], pa.string()))
    return scrub_free_text(table)


def sensitive_columns(stream) -> set[str]:
    """The raw columns of a stream's config that hold an identifier (sealed whole at landing): those mapped to a
    :data:`SENSITIVE_FIELDS` field or hashed by a resident-ID transform, plain or inside a template."""
    out: set[str] = set()
    for dmap in getattr(stream, "maps", None) or ():
        for name, spec in dmap.fields.items():
            if name in SENSITIVE_FIELDS or set(spec.transform or ()) & HASH_TRANSFORMS:
                if spec.column:
                    out.add(spec.column)
                if spec.template:
                    out.update(re.findall(r"\{([^{}]+)\}", spec.template))
    return out
