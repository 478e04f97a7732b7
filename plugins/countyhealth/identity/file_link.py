"""``countyhealth identity link INPUT.csv --output OUTPUT.csv``: the EMPI on a plain file.

County IT uses it to check a member's patient list before connecting it; the benchmarks use it on data the
simulator never made (Febrl). INPUT is UTF-8 with a header holding ``record_id,source,name,sex,birth_date,
id_number,phone,address`` (any but ``record_id`` may be empty, or missing altogether); OUTPUT has
``record_id,person_id`` for every input record, then ``link`` (how the record joined its person:
deterministic, probabilistic, manual or new) and ``match_probability`` (its best score to its person).

It runs the pipeline's own standardisation (:mod:`.features`), model, thresholds and guards
(:func:`.engine.link`): only where records come from differs — and, for files unlike the county's, the model's
parameters (:func:`choose_settings`), and between sources that hold each person once, the one-to-one prior
(:mod:`.one_to_one`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from countyhealth.identity import engine, features, load_config, model, one_to_one
from countyhealth.standardise.person import is_latin

COLUMNS = ["record_id", "source", "name", "sex", "birth_date", "id_number", "phone", "address"]


class LinkInputError(ValueError):
    """The input file cannot be linked as it is; the message names the file and the fix."""


def read_input(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise LinkInputError(f"{path.name}: not UTF-8 — re-save it as UTF-8 (GB18030 exports: "
                             f"iconv -f GB18030 -t UTF-8)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LinkInputError(f"{path.name}: not a CSV with a header row ({exc})") from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    if "record_id" not in frame.columns:
        raise LinkInputError(f"{path.name}: no record_id column — the header must name record_id and any of "
                             f"{', '.join(COLUMNS[1:])}")
    return frame


def to_person_rows(frame: pd.DataFrame, *, where: str = "input") -> pd.DataFrame:
    """The input's columns as canonical person rows (what :func:`features.build` reads)."""
    frame = frame.apply(lambda col: col.str.strip() if col.dtype == object else col)
    frame = frame.where(frame.ne(""), None)
    ids = frame["record_id"]
    if ids.isna().any():
        raise LinkInputError(f"{where}: record_id is empty on line(s) "
                             f"{', '.join(str(i + 2) for i in ids[ids.isna()].index[:5])} — every record needs one")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise LinkInputError(f"{where}: record_id repeats ({len(dup)} time(s), e.g. on line {dup.index[0] + 2}) — "
                             "record ids must be unique in the file")
    get = lambda c: frame[c] if c in frame else pd.Series(None, index=frame.index, dtype=object)  # noqa: E731
    sex = get("sex").map(lambda v: {"m": "1", "male": "1", "男": "1", "f": "2", "female": "2", "女": "2"}.get(
        v.lower(), v) if isinstance(v, str) else None)
    return pd.DataFrame({
        "source_id": get("source").fillna("input"),
        "source_record_id": ids,
        "name": get("name"), "sex_code": sex,
        "birth_date": get("birth_date").map(_iso_date),
        "id_number": get("id_number"), "phone": get("phone"), "address": get("address"),
    })


def _iso_date(value):
    if not isinstance(value, str):
        return None
    parsed = pd.to_datetime(value, errors="coerce", format="%Y-%m-%d")
    if pd.isna(parsed):
        parsed = pd.to_datetime(value, errors="coerce", format="%Y%m%d")
    return None if pd.isna(parsed) else parsed.date().isoformat()


MIN_RECORDS_TO_FIT = 2000
MODEL_CHOICES = ("auto", "reviewed", "fit")


def looks_like_the_county(feats: pd.DataFrame) -> bool:
    """Most names in Chinese characters, and most identifiers valid resident IDs (where the file has them): the
    records the reviewed model's parameters were estimated on. Latin-letter names and other numbers (another
    country's file, a test set) are not — how often strangers share a birth date or a surname there is unknown
    to the reviewed model."""
    def share(col: str, test) -> float | None:
        values = feats[col].dropna()
        return float(test(values).mean()) if len(values) else None

    chinese_names = share("name_std", lambda v: ~v.map(is_latin).astype(bool))
    resident_ids = share("id18", lambda v: feats.loc[v.index, "id_valid"].eq(True))
    return all(s is None or s >= 0.5 for s in (chinese_names, resident_ids))


def choose_settings(feats: pd.DataFrame, choice: str = "auto", *, where: str = "input") -> tuple[dict, str]:
    """The model's parameters for this file, and which: ``reviewed`` (identity/model.json), ``fit`` (EM on the file
    itself, the pipeline's own recipe: u by random sampling, m by EM), or ``auto`` — fitted when the file does not
    look like the county's records and is large enough for EM, the reviewed model otherwise."""
    if choice not in MODEL_CHOICES:
        raise LinkInputError(f"model {choice!r} unknown: use one of {', '.join(MODEL_CHOICES)}")
    if choice == "auto":
        choice = "fit" if len(feats) >= MIN_RECORDS_TO_FIT and not looks_like_the_county(feats) else "reviewed"
    if choice == "reviewed":
        return model.load_settings(), "reviewed"
    if len(feats) < MIN_RECORDS_TO_FIT:
        raise LinkInputError(f"{where}: {len(feats):,} records are too few to fit the model (EM needs at least "
                             f"{MIN_RECORDS_TO_FIT:,}) — link with --model reviewed")
    return model.train(feats, max_pairs=min(3e6, len(feats) * 100.0)), "fit"


def link_frame(frame: pd.DataFrame, *, backend: str | None = None, where: str = "input",
               model_choice: str = "auto") -> pd.DataFrame:
    """``record_id, person_id, link, match_probability`` for every row of ``frame`` (input columns).

    ``model_choice``: see :func:`choose_settings`. Sources in which no two records link (each holds a person once)
    are linked to each other under the one-to-one prior of :mod:`.one_to_one`."""
    rows = to_person_rows(frame, where=where)
    if rows.empty:
        return pd.DataFrame(columns=["record_id", "person_id", "link", "match_probability"])
    source_of = pd.Series(rows["source_id"].to_numpy(), index="file|" + rows["source_record_id"])
    # record ids are unique in the file, so they alone key the records (two sources may reuse an id scheme)
    rows["source_id"] = "file"
    feats = features.build(rows)
    cfg = load_config()
    settings, chosen = choose_settings(feats, model_choice, where=where)
    prior = settings["probability_two_random_records_match"]

    def rescore(edges: pd.DataFrame) -> pd.DataFrame:
        exclusive = one_to_one.sources_one_per_person(edges, source_of, review=cfg.review)
        return one_to_one.rescore(edges, source_of, exclusive, prior=prior) if len(exclusive) >= 2 else edges

    seq = itertools.count(1)
    result = engine.link(feats, None, {}, settings=settings,
                         thresholds=engine.Thresholds(cfg.auto_link, cfg.review),
                         mint=lambda: f"P{next(seq):010d}", backend=backend or cfg.backend,
                         rescore=rescore if source_of.nunique() >= 2 else None)
    keys = feats["unique_id"]
    kinds = [result.link_kind.get(k, ("new", None)) for k in keys]
    out = pd.DataFrame({"record_id": rows["source_record_id"].to_numpy(),
                        "person_id": [result.person_of[k] for k in keys],
                        "link": [k[0] for k in kinds],
                        "match_probability": [None if k[1] is None else round(float(k[1]), 6) for k in kinds]})
    out.attrs["model"] = chosen
    return out


def link_csv(input_path: Path, output_path: Path, *, backend: str | None = None, model_choice: str = "auto") -> dict:
    frame = read_input(input_path)
    out = link_frame(frame, backend=backend, where=input_path.name, model_choice=model_choice)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    out.to_csv(tmp, index=False, encoding="utf-8")
    tmp.replace(output_path)
    return {"records": len(out), "persons": int(out["person_id"].nunique()) if len(out) else 0,
            "model": out.attrs.get("model"),
            "ignored_columns": sorted(set(frame.columns) - set(COLUMNS))}
