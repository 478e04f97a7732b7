"""One identity run against the warehouse, in one transaction: read what to place, place it, write it all."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from countyhealth.identity import IdentityConfig, IdentityRunSummary, engine, features, golden, model, store

log = logging.getLogger(__name__)


def link_pending(wh, cfg: IdentityConfig, run_id: str, *, model_path=None) -> IdentityRunSummary:
    summary = IdentityRunSummary(run_id)
    settings = model.load_settings(model_path)
    step = _Steps(summary.steps)
    with ThreadPoolExecutor(1, thread_name_prefix="identity-model") as ahead, wh.begin() as conn:
        # Splink's model made ready (its SQL parsed: Python's work) while the warehouse reads the night (SQL: the GIL
        # released)
        scorer = ahead.submit(engine.Scorer, settings, cfg.backend)
        if conn.dialect.name == "postgresql":
            # a run's queries join tonight's temporary tables: PostgreSQL's JIT compiled them for longer than they
            # ran (1.1 s of the repeats' 1.8 s on 20k records)
            conn.execute(sa.text("SET LOCAL jit = off"))
        started = store.now()
        pending = store.to_link(conn)  # (Arrow: only what the engine places becomes Python objects)
        summary.records_considered = pending.num_rows
        if not pending.num_rows:
            _record_run(conn, summary, started, settings)
            return summary
        step("read")
        accepted, rejected = store.decisions(conn)  # a reviewer's, honoured by every run
        uids = pc.binary_join_element_wise(pending["source_id"], pending["source_record_id"], "|")
        relinked = pc.is_valid(pending["previous_person_id"])
        previous = dict(zip(uids.filter(relinked).to_pylist(),
                            pending["previous_person_id"].filter(relinked).to_pylist()))
        # the warehouse looks for repeats (SQL: the GIL released) while Python standardises: the linked records
        # holding the night's IDs while Python computes what a repeat is compared on; the repeats among them while
        # Python standardises the night's addresses and builds the features of rows that can repeat no one (without
        # all of ID, name, birth date and sex); then it writes the repeats while Python builds the other rows'
        # features — two cores, not one and then the other
        repeats, early, unkeyed = {}, None, pa.array(np.zeros(pending.num_rows, dtype=bool))
        if store.anything_linked(conn):  # (the first run has nothing to repeat)
            _, night = _beside(lambda: store.match_ids(wh, conn, pending, changed=set(previous),
                                                       decided={u for pair in accepted | rejected for u in pair}),
                               lambda: features.repeat_keys(pending))
            unkeyed = pc.invert(pc.is_in(uids, value_set=pc.binary_join_element_wise(
                night["source_id"], night["source_record_id"], "|")))
            repeats, (addresses, early) = _beside(
                lambda: store.find_repeats(wh, conn, night),
                lambda: (features.address_keys(pending),
                         _build(pending, unkeyed) if pc.any(unkeyed).as_py() else None))
        step("repeats")
        placed = pc.invert(pc.is_in(uids, pa.array(list(repeats), pa.string())))  # what the engine places
        others = pc.and_(placed, pc.invert(unkeyed))
        if repeats:
            _, built = _beside(lambda: store.write_repeats(wh, conn, addresses.filter(pc.invert(placed)),
                                                           now=store.now(), run_id=run_id),
                               lambda: _build(pending, others))
        else:
            built = _build(pending, others)
        new_f = _in_row_order([(unkeyed, early), (others, built)])
        step("features")
        result = engine.LinkResult({}, {})
        repeated = set(repeats.values())  # persons the repeats add records to: their records are all written
        if len(new_f):  # (a night of repeats only leaves nothing to score)
            cand_f = store.candidates(wh, conn, new_f, exclude=set(new_f["unique_id"]),
                                      previous=set(previous.values()))
            existing_person = dict(zip(cand_f["unique_id"], cand_f.pop("person_id")))
            step("candidates")
            minter = store.next_person_ids(conn)  # (read now: the connection is the golden records' below)
            # the engine scores in a database of its own and clusters in Python, leaving the warehouse idle: the
            # repeats' persons' golden records are rebuilt meanwhile (those the engine's links touch again are
            # rebuilt once more after the write)
            _, result = _beside(
                lambda: golden.refresh(wh, conn, sorted(repeated), cfg, store.now()),
                lambda: engine.link(new_f, cand_f, existing_person, settings=settings,
                                    thresholds=engine.Thresholds(cfg.auto_link, cfg.review), mint=lambda: next(minter),
                                    previous_person=previous, accepted=accepted, rejected=rejected,
                                    backend=cfg.backend, scorer=scorer.result()))
            repeated = set()
        step("link")
        now = store.now()
        summary.blocked_by_guards = len(result.blocked)
        summary.linked_deterministic += len(repeats)
        for kind, _ in result.link_kind.values():
            if kind == "deterministic":
                summary.linked_deterministic += 1
            elif kind == "probabilistic":
                summary.linked_probabilistic += 1
            elif kind == "manual":
                summary.linked_manual += 1
        _write_persons(wh, conn, result, now, run_id, summary)
        _write_records(wh, conn, new_f, result, now, run_id, relinked=set(previous))
        summary.queued_for_review = _write_review(wh, conn, result, now, run_id)
        step("write")
        touched = sorted({p for p in result.person_of.values()} | {to for _, _, to in result.moves}
                         | {frm for _, frm, _ in result.moves} | repeated)
        golden.refresh(wh, conn, touched, cfg, now)
        _record_run(conn, summary, started, settings)
        step("golden")
    step("commit")
    return summary


def _build(rows: pa.Table, chosen: pa.Array) -> pd.DataFrame:
    return features.build(store.objects_frame(rows.filter(chosen)))


def _in_row_order(parts: list[tuple[pa.Array, pd.DataFrame | None]]) -> pd.DataFrame:
    """Feature frames of disjoint sets of a night's rows (a mask of the rows, and their features or None) as one, the
    rows in the night's order: person ids are minted in the order records come."""
    parts = [(np.flatnonzero(mask.to_numpy(zero_copy_only=False)), frame) for mask, frame in parts
             if frame is not None]
    if len(parts) == 1:
        return parts[0][1]
    order = np.argsort(np.concatenate([rows for rows, _ in parts]), kind="stable")
    return pd.concat([frame for _, frame in parts], ignore_index=True).iloc[order].reset_index(drop=True)


def _beside(background, foreground):
    """``background()`` on a thread while ``foreground()`` runs here; both results, once both are done. DuckDB and
    psycopg release the GIL while a statement runs, so the warehouse's SQL and Python's standardisation share the
    machine's cores rather than taking turns. The connection is the background's alone until it returns (the
    foreground must not touch it); should the foreground fail, the background is waited for all the same (leaving
    the pool waits) before the transaction unwinds."""
    with ThreadPoolExecutor(1, thread_name_prefix="identity-sql") as pool:
        behind = pool.submit(background)
        ahead = foreground()
    return behind.result(), ahead


class _Steps:
    """Seconds since the previous step, recorded under each step's name (the run's log line shows them)."""

    def __init__(self, into: dict[str, float]):
        self.into, self.last = into, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.last, 2)
        self.last = now


def _event(conn, kind, person, other, rec, reason, now, run_id):
    source_id, source_record_id = (rec.split("|", 1) + [None])[:2] if rec else (None, None)
    conn.execute(sa.text("INSERT INTO identity_event (event_id, run_id, kind, person_id, other_person_id, source_id, "
                         "source_record_id, reason, occurred_at) VALUES (:e, :r, :k, :p, :o, :s, :sr, :why, :at)"),
                 {"e": store.new_event_id(), "r": run_id, "k": kind, "p": person, "o": other, "s": source_id,
                  "sr": source_record_id, "why": reason, "at": now})


def _write_persons(wh, conn, result: engine.LinkResult, now, run_id: str, summary: IdentityRunSummary) -> None:
    n = len(result.new_persons)
    if n:
        ts = pa.array([now] * n, pa.timestamp("us"))
        wh.insert_arrow(conn, "empi_person", pa.table({
            "person_id": pa.array(result.new_persons, pa.string()), "status": pa.array(["active"] * n),
            "created_at": ts, "updated_at": ts}))
        wh.insert_arrow(conn, "identity_event", pa.table({
            "event_id": pa.array(store.new_event_ids(n)), "run_id": pa.array([run_id] * n),
            "kind": pa.array(["new"] * n), "person_id": pa.array(result.new_persons, pa.string()),
            "reason": pa.array(["no existing person matched"] * n), "occurred_at": ts}))
    summary.new_persons = n
    for survivor, merged, via in result.merges:
        _redirect(conn, merged, survivor, now)
        _event(conn, "merge", survivor, merged, via, "new evidence links records of both persons", now, run_id)
        summary.merges += 1
    for rec, old, new in result.moves:
        left = conn.execute(sa.text("SELECT count(*) FROM identity_record WHERE person_id = :p AND "
                                    "source_id || '|' || source_record_id <> :r"), {"p": old, "r": rec}).fetchall()[0][0]
        if left:
            _event(conn, "split", old, new, rec, "a changed record no longer matches the rest of its person", now,
                   run_id)
            summary.splits += 1
        else:  # the old person's only record moved: the old id redirects to where it went
            _redirect(conn, old, new, now)
            _event(conn, "merge", new, old, rec, "the person's only record now matches another person", now, run_id)
            summary.merges += 1


def _redirect(conn, merged: str, survivor: str, now) -> None:
    conn.execute(sa.text("UPDATE empi_person SET status = 'merged', merged_into = :s, updated_at = :t "
                         "WHERE person_id = :m"), {"s": survivor, "m": merged, "t": now})
    conn.execute(sa.text("UPDATE empi_person SET merged_into = :s, updated_at = :t WHERE merged_into = :m"),
                 {"s": survivor, "m": merged, "t": now})  # earlier redirects follow along
    # (person_link, the results stage's view of the links, is identity_record's)
    conn.execute(sa.text("UPDATE identity_record SET person_id = :s WHERE person_id = :m"), {"s": survivor, "m": merged})
    conn.execute(sa.text("DELETE FROM golden_person WHERE person_id = :m"), {"m": merged})


def _write_records(wh, conn, new_f: pd.DataFrame, result: engine.LinkResult, now, run_id: str,
                   relinked: set[str]) -> None:
    """The placed records' identity_record rows (person_link is a view of them); the rows of ``relinked`` records
    (linked before, changed since) replace their old ones."""
    frame = new_f.copy()
    frame["person_id"] = frame["unique_id"].map(result.person_of)
    kinds = frame["unique_id"].map(lambda u: result.link_kind.get(u, ("new", None)))
    frame["link_kind"] = [k for k, _ in kinds]
    frame["match_probability"] = [p for _, p in kinds]
    frame["linked_at"] = now
    frame["run_id"] = run_id
    again = frame["unique_id"].isin(relinked).to_numpy()
    if again.any():  # (most nights none: the delete is a pass over identity_record)
        keys = pa.Table.from_pandas(frame.loc[again, ["source_id", "source_record_id"]], preserve_index=False)
        conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_new (source_id VARCHAR, "
                             "source_record_id VARCHAR)"))
        conn.execute(sa.text("DELETE FROM _identity_new"))
        store.fill_temp(wh, conn, "_identity_new", keys)
        conn.execute(sa.text("DELETE FROM identity_record WHERE EXISTS (SELECT 1 FROM _identity_new n WHERE "
                             "n.source_id = identity_record.source_id AND "
                             "n.source_record_id = identity_record.source_record_id)"))
        conn.execute(sa.text("DELETE FROM _identity_new"))
    stored = store.stored_features(new_f)
    for c in store.FEATURE_COLUMNS:
        frame[c] = stored[c].to_numpy()
    # (Arrow reads NaN and NaT in pandas columns as nulls itself: no copy with None put in)
    wh.insert_arrow(conn, "identity_record", pa.Table.from_pandas(frame[store.RECORD_COLUMNS], preserve_index=False,
                                                                  schema=_record_schema()))


def _record_schema() -> pa.Schema:
    s, b, d, t = pa.string(), pa.bool_(), pa.float64(), pa.timestamp("us")
    types = {"id_valid": b, "id_foreign": b, "match_probability": d, "linked_at": t}
    return pa.schema([(c, types.get(c, s)) for c in store.RECORD_COLUMNS])


def _write_review(wh, conn, result: engine.LinkResult, now, run_id: str) -> int:
    """Queue the run's uncertain pairs not queued before (a pair's id is stable, whichever run finds it)."""
    known = {r[0] for r in conn.execute(sa.text("SELECT pair_id FROM identity_review")).fetchall()}
    rows: dict[str, tuple] = {}
    for edge in result.review:
        pid = engine.pair_id(edge.left, edge.right)
        if pid not in known and pid not in rows:
            rows[pid] = (*edge.left.split("|", 1), *edge.right.split("|", 1), edge.probability, edge.evidence)
    if rows:
        columns = list(zip(*rows.values()))
        n = len(rows)
        wh.insert_arrow(conn, "identity_review", pa.table({
            "pair_id": pa.array(list(rows), pa.string()),
            **{name: pa.array(columns[i], pa.string()) for i, name in enumerate(
                ["left_source_id", "left_source_record_id", "right_source_id", "right_source_record_id"])},
            "match_probability": pa.array(columns[4], pa.float64()), "evidence": pa.array(columns[5], pa.string()),
            "status": pa.array(["open"] * n), "created_at": pa.array([now] * n, pa.timestamp("us")),
            "run_id": pa.array([run_id] * n)}))
    return len(rows)


def _record_run(conn, summary: IdentityRunSummary, started, settings: dict) -> None:
    import hashlib
    import json

    version = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    conn.execute(sa.text("INSERT INTO identity_run (run_id, started_at, ended_at, records_considered, "
                         "linked_deterministic, linked_probabilistic, linked_manual, new_persons, queued_for_review, "
                         "merges, splits, model_version) VALUES (:r, :s, :e, :c, :d, :p, :m, :n, :q, :mg, :sp, :v)"),
                 {"r": summary.run_id, "s": started, "e": store.now(), "c": summary.records_considered,
                  "d": summary.linked_deterministic, "p": summary.linked_probabilistic, "m": summary.linked_manual,
                  "n": summary.new_persons, "q": summary.queued_for_review, "mg": summary.merges,
                  "sp": summary.splits, "v": version})
