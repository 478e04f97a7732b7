"""``countyhealth identity``: run the EMPI, work the review queue, look at a person, retrain the model.

ID numbers and phones are masked everywhere unless ``--show-identifiers`` is given *and* the operating-system
user is listed in ``config/identity.yaml`` ``identifier_viewers`` (the health-information office); the
refusal says so. Every reviewer decision is stored (who, when, note) and honoured by every later run.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

import click
import sqlalchemy as sa

from countyhealth import privacy


def _wh(url):
    from countyhealth.warehouse import Warehouse

    wh = Warehouse(url)
    wh.migrate()
    return wh


def _may_show(flag: bool) -> bool:
    if not flag:
        return False
    from countyhealth.identity import load_config

    user = getpass.getuser()
    if user not in load_config().identifier_viewers:
        raise click.ClickException(f"user {user!r} may not see identifiers: ask the health-information office to "
                                   "add you to identifier_viewers in config/identity.yaml")
    return True


def _person_row(conn, source_id: str, record_id: str) -> dict:
    row = conn.execute(sa.text("SELECT name, sex_code, birth_date, id_number, phone, health_record_number, address, "
                               "facility_code FROM person WHERE source_id = :s AND source_record_id = :r"),
                       {"s": source_id, "r": record_id}).mappings().first()
    return dict(row) if row else {}


def _show_value(key: str, value, show: bool) -> str:
    if value is None:
        return "—"
    if key in ("id_number", "phone"):
        plain = privacy.decrypt(value)
        return plain if show else (privacy.mask_id(plain) if key == "id_number" else privacy.mask_phone(plain))
    return str(value)


@click.group("identity")
def identity() -> None:
    """The EMPI: link person records to residents; review uncertain pairs."""


@identity.command("run")
@click.option("--url", default=None, help="Warehouse URL (default COUNTYHEALTH_WAREHOUSE_URL).")
def run_command(url) -> None:
    """Link new and changed person records (what the nightly DAG's identity task does)."""
    from countyhealth import identity as empi

    s = empi.run(_wh(url))
    click.echo(f"{s.records_considered:,} records: {s.linked_deterministic:,} deterministic, "
               f"{s.linked_probabilistic:,} probabilistic, {s.linked_manual:,} manual links; {s.new_persons:,} new "
               f"persons; {s.merges} merges, {s.splits} splits; {s.queued_for_review} queued for review "
               f"({s.seconds:.1f}s)")


@identity.group("review", invoke_without_command=True)
@click.option("--url", default=None)
@click.option("--limit", default=20, show_default=True)
@click.option("--show-identifiers", is_flag=True, help="Unmask ID numbers and phones (authorised users only).")
@click.pass_context
def review(ctx, url, limit, show_identifiers) -> None:
    """List open pairs side by side; `review accept|reject PAIR_ID` decides one."""
    ctx.obj = {"url": url}
    if ctx.invoked_subcommand:
        return
    show = _may_show(show_identifiers)
    wh = _wh(url)
    with wh.engine.connect() as conn:
        pairs = conn.execute(sa.text("SELECT * FROM identity_review WHERE status = 'open' "
                                     "ORDER BY match_probability DESC LIMIT :n"), {"n": limit}).mappings().all()
        total = conn.execute(sa.text("SELECT count(*) FROM identity_review WHERE status = 'open'")).scalar()
        click.echo(f"{total} open pair(s); showing {len(pairs)}")
        for p in pairs:
            left = _person_row(conn, p["left_source_id"], p["left_source_record_id"])
            right = _person_row(conn, p["right_source_id"], p["right_source_record_id"])
            # evidence: what decided the pair (a guard, or the score between the thresholds), then the levels
            rule, _, levels = (p["evidence"] or "").rpartition("; ") if "; " in (p["evidence"] or "") else \
                (p["evidence"] or "", "", "")
            click.echo(f"\npair {p['pair_id']}  match probability {p['match_probability']:.3f}  evidence {levels}")
            if rule:
                click.echo(f"  decided by: {rule}")
            click.echo(f"  {'':<22}{p['left_source_id'] + '/' + p['left_source_record_id']:<34}"
                       f"{p['right_source_id'] + '/' + p['right_source_record_id']}")
            for key in ("name", "sex_code", "birth_date", "id_number", "phone", "health_record_number", "address",
                        "facility_code"):
                a, b = _show_value(key, left.get(key), show), _show_value(key, right.get(key), show)
                mark = " " if a == b else "≠"
                click.echo(f"  {mark} {key:<20}{a:<34}{b}")


def _decide(url, pair_id: str, status: str, note: str | None) -> None:
    wh = _wh(url)
    with wh.begin() as conn:
        row = conn.execute(sa.text("SELECT status FROM identity_review WHERE pair_id = :p"), {"p": pair_id}).fetchall()
        if not row:
            raise click.ClickException(f"no review pair {pair_id} (see `countyhealth identity review`)")
        conn.execute(sa.text("UPDATE identity_review SET status = :s, decided_by = :u, decided_at = :t, note = :n "
                             "WHERE pair_id = :p"),
                     {"s": status, "u": getpass.getuser(), "t": dt.datetime.now(), "n": note, "p": pair_id})
        if status == "accepted":  # re-place both records at the next run, now with a must-link
            _requeue(conn, pair_id)
    click.echo(f"pair {pair_id}: {status}; applied by the next identity run")


def _requeue(conn, pair_id: str) -> None:
    for side in ("left", "right"):
        conn.execute(sa.text(f"UPDATE identity_record SET batch_id = NULL WHERE (source_id, source_record_id) IN "
                             f"(SELECT {side}_source_id, {side}_source_record_id FROM identity_review "
                             f"WHERE pair_id = :p)"), {"p": pair_id})


@review.command("accept")
@click.argument("pair_id")
@click.option("--note", default=None)
@click.pass_context
def accept(ctx, pair_id, note) -> None:
    """The two records are the same resident: link them (and keep them linked)."""
    _decide(ctx.obj["url"], pair_id, "accepted", note)


@review.command("reject")
@click.argument("pair_id")
@click.option("--note", default=None)
@click.pass_context
def reject(ctx, pair_id, note) -> None:
    """The two records are different residents: never link them."""
    _decide(ctx.obj["url"], pair_id, "rejected", note)


@identity.command("show")
@click.argument("person_id")
@click.option("--url", default=None)
@click.option("--show-identifiers", is_flag=True)
def show(person_id, url, show_identifiers) -> None:
    """A person's golden record, linked records and history."""
    from countyhealth import identity as empi

    visible = _may_show(show_identifiers)
    wh = _wh(url)
    active = empi.resolve(wh, person_id)
    if active != person_id:
        click.echo(f"{person_id} was merged into {active}")
    with wh.engine.connect() as conn:
        golden = conn.execute(sa.text("SELECT * FROM golden_person WHERE person_id = :p"), {"p": active}).mappings().first()
        if golden:
            click.echo(f"{active}: " + ", ".join(f"{k}={_show_value(k, golden[k], visible)} [{golden.get(k + '_source_id')}]"
                                                 for k in ("name", "sex_code", "birth_date", "id_number", "phone",
                                                           "health_record_number") if golden.get(k) is not None))
        for r in conn.execute(sa.text("SELECT source_id, source_record_id, link_kind, match_probability FROM "
                                      "identity_record WHERE person_id = :p ORDER BY source_id"), {"p": active}).all():
            click.echo(f"  {r[0]}/{r[1]}  {r[2]}" + (f" p={r[3]:.4f}" if r[3] is not None else ""))
        for e in conn.execute(sa.text("SELECT kind, person_id, other_person_id, reason, occurred_at FROM identity_event "
                                      "WHERE person_id = :p OR other_person_id = :p ORDER BY occurred_at"),
                              {"p": active}).all():
            click.echo(f"  {e[4]:%Y-%m-%d %H:%M} {e[0]} {e[1]} {e[2] or ''} — {e[3]}")


@identity.command("status")
@click.option("--url", default=None)
def status(url) -> None:
    """Persons, links by kind, open reviews, last runs."""
    wh = _wh(url)
    with wh.engine.connect() as conn:
        persons = conn.execute(sa.text("SELECT status, count(*) FROM empi_person GROUP BY 1 ORDER BY 1")).all()
        kinds = conn.execute(sa.text("SELECT link_kind, count(*) FROM identity_record GROUP BY 1 ORDER BY 1")).all()
        reviews = conn.execute(sa.text("SELECT status, count(*) FROM identity_review GROUP BY 1 ORDER BY 1")).all()
        runs = conn.execute(sa.text("SELECT run_id, records_considered, new_persons, merges, splits, queued_for_review "
                                    "FROM identity_run ORDER BY started_at DESC LIMIT 5")).all()
    click.echo("persons: " + ", ".join(f"{s} {n:,}" for s, n in persons))
    click.echo("records: " + ", ".join(f"{k} {n:,}" for k, n in kinds))
    click.echo("review queue: " + (", ".join(f"{s} {n:,}" for s, n in reviews) or "empty"))
    for r in runs:
        click.echo(f"  {r[0]}: {r[1]:,} records, {r[2]:,} new, {r[3]} merges, {r[4]} splits, {r[5]} queued")


@identity.command("link")
@click.argument("input_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="record_id,person_id[,link,match_probability] for every input record.")
@click.option("--backend", type=click.Choice(["duckdb", "spark"]), default=None,
              help="Splink backend (default: config/identity.yaml).")
@click.option("--model", "model_choice", type=click.Choice(["auto", "reviewed", "fit"]), default="auto",
              show_default=True,
              help="Parameters: the reviewed county model, or re-estimated on this file by EM (at least 2,000 records); "
                   "auto fits when most names are not Chinese or most IDs are not resident IDs.")
def link_file(input_csv, output, backend, model_choice) -> None:
    """Link the records of a CSV file (record_id,source,name,sex,birth_date,id_number,phone,address) with the
    pipeline's standardisation, model and guards; nothing is read from or written to the warehouse."""
    import logging

    from countyhealth.identity.file_link import LinkInputError, link_csv

    logging.getLogger("splink").setLevel(logging.WARNING)  # its timings are noise on a terminal
    try:
        out = link_csv(input_csv, output, backend=backend, model_choice=model_choice)
    except LinkInputError as exc:
        raise click.ClickException(str(exc)) from None
    note = f" (ignored columns: {', '.join(out['ignored_columns'])})" if out["ignored_columns"] else ""
    model_used = {"fit": "parameters fitted to this file", "reviewed": "the reviewed model"}.get(out["model"], "")
    note += f" — {model_used}" if model_used else ""
    click.echo(f"{out['records']:,} records → {out['persons']:,} persons: {output}{note}")


@identity.command("retrain")
@click.option("--url", default=None)
@click.option("--simulated", "simulated", type=int, default=None,
              help="Train on a simulated population of this many residents instead of the warehouse.")
@click.option("--out", default=None, help="Where to write the model (default: the packaged identity/model.json).")
def retrain(url, simulated, out) -> None:
    """Re-estimate the model by EM and write it for review; prints how m/u probabilities moved."""
    from pathlib import Path

    import pandas as pd

    from countyhealth.identity import features, model

    if simulated:
        from countyhealth.simulate.person_records import person_records

        recs, _ = person_records(simulated, seed=3)
        frame = features.build(pd.DataFrame([r.row for r in recs]))
    else:
        wh = _wh(url)
        with wh.engine.connect() as conn:
            result = conn.execute(sa.text("SELECT * FROM person"))
            rows = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        frame = features.build(rows)
    if len(frame) < 1000:
        raise click.ClickException(f"only {len(frame)} records: EM needs thousands; use --simulated N to train on a "
                                   "simulated population")
    old = model.load_settings() if model.MODEL_PATH.exists() else None
    new = model.train(frame)
    path = model.save_settings(new, Path(out) if out else None)
    click.echo(f"wrote {path} from {len(frame):,} records")
    if old:
        for c_old, c_new in zip(old["comparisons"], new["comparisons"]):
            for l_old, l_new in zip(c_old["comparison_levels"], c_new["comparison_levels"]):
                if l_old.get("is_null_level"):
                    continue
                dm = (l_new.get("m_probability") or 0) - (l_old.get("m_probability") or 0)
                if abs(dm) >= 0.01:
                    click.echo(f"  {c_new['output_column_name']:<22} {l_new.get('label_for_charts', '')[:40]:<42} "
                               f"m {l_old.get('m_probability', 0):.3f} → {l_new.get('m_probability', 0):.3f}")
    click.echo("review the diff (git diff) before committing the new model")


@identity.command("blocking")
@click.option("--simulated", "simulated", type=int, default=20000, show_default=True)
def blocking(simulated) -> None:
    """Candidate pairs each blocking rule generates (how the rules were chosen)."""
    import duckdb
    import pandas as pd

    from countyhealth.identity import features, model
    from countyhealth.simulate.person_records import person_records

    recs, _ = person_records(simulated, seed=3)
    frame = features.build(pd.DataFrame([r.row for r in recs]))
    con = duckdb.connect()
    con.register("records", frame)
    # each pair once, as Splink scores them for dedupe (l < r); rules exactly as the model holds them
    for rule in model.BLOCKING_RULES + ["l.surname_pinyin = r.surname_pinyin"]:
        n = con.execute(f"SELECT count(*) FROM records l JOIN records r ON l.unique_id < r.unique_id AND ({rule})"
                        ).fetchall()[0][0]
        click.echo(f"{n:>14,}  {rule}")
    con.close()
    click.echo(json.dumps({"records": len(frame)}))
