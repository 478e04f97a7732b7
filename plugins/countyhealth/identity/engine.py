"""Linking records to persons: score pairs with the Splink model, then cluster under the guards.

Works on feature frames (:mod:`.features`) and knows nothing of the warehouse, so tests and the benchmark run
it directly. ``link()`` takes the records to place (new or changed) and the already-linked records that
could be theirs, and returns each record's person — existing person ids kept, new ones minted only for new
people — plus the merges the new evidence implies and the pairs to review.

Clustering is constrained, not transitive closure: edges are taken strongest first, and two groups join only
if no pair across them is forbidden by a guard (:mod:`.guards`) or a reviewer's rejection. So a chain
A–B–C cannot put two residents with different valid IDs into one person because each step looked fine.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from countyhealth.identity import features, guards, model

log = logging.getLogger(__name__)


@dataclass
class Thresholds:
    auto_link: float = 0.999
    review: float = 0.5


@dataclass
class Edge:
    left: str
    right: str
    probability: float
    kind: str  # deterministic | probabilistic | manual
    evidence: str = ""


@dataclass
class LinkResult:
    person_of: dict[str, str]  # record → person id (new and touched existing records)
    link_kind: dict[str, tuple[str, float | None]]  # record → (kind, best probability to its person)
    new_persons: list[str] = field(default_factory=list)
    merges: list[tuple[str, str, str]] = field(default_factory=list)  # (survivor, merged, via record)
    moves: list[tuple[str, str, str]] = field(default_factory=list)  # (record, from person, to person)
    review: list[Edge] = field(default_factory=list)
    blocked: list[tuple[Edge, str]] = field(default_factory=list)  # strong edges a guard refused, with why


def pair_id(a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return hashlib.sha256(f"{lo}\n{hi}".encode()).hexdigest()[:24]


def _deterministic_pairs(new: pd.DataFrame, existing: pd.DataFrame | None) -> pd.DataFrame:
    """Record pairs safe to link without a model — the same valid ID with the same name (pinyin), or the same
    health-record number with the same name and birth date — found by a self-join on each key, not only among the
    pairs the model scored (a record may share an ID with another yet disagree on all else). Only pairs with a
    new record: a night's records against a million linked. ``unique_id_l < unique_id_r``."""
    import duckdb

    cols = ["unique_id", "id18", "id_valid", "name_pinyin", "birth_date", "health_record_number"]
    con = duckdb.connect()
    try:
        # DuckDB reads the columns it needs straight from the frames (no copy of a million linked records), and
        # keeps the linked records sharing a key with a new one (a night: a few of a million) by a hash semi-join
        con.register("new_rec", new[cols])
        con.register("old_rec", existing if existing is not None and len(existing) else new[cols].iloc[:0])
        # only the keys a new record carries can make a new pair
        return con.execute(f"""
            WITH n AS (SELECT {', '.join(cols)} FROM new_rec WHERE name_pinyin IS NOT NULL),
            o AS (SELECT {', '.join(cols)} FROM old_rec WHERE name_pinyin IS NOT NULL
                  AND (id_valid AND id18 IN (SELECT id18 FROM n WHERE id_valid)
                       OR health_record_number IN (SELECT health_record_number FROM n))),
            r AS (SELECT *, true AS is_new FROM n UNION ALL SELECT *, false FROM o),
            ids AS (SELECT * FROM r WHERE id_valid AND id18 IN (SELECT id18 FROM r WHERE is_new AND id_valid)),
            hrns AS (SELECT * FROM r WHERE health_record_number IN (SELECT health_record_number FROM r WHERE is_new))
            SELECT a.unique_id AS unique_id_l, b.unique_id AS unique_id_r, 'same id18' AS evidence
            FROM ids a JOIN ids b ON a.id18 = b.id18 AND a.unique_id < b.unique_id
            WHERE a.name_pinyin = b.name_pinyin AND (a.is_new OR b.is_new)
            UNION ALL
            SELECT a.unique_id, b.unique_id, 'same health_record_number'
            FROM hrns a JOIN hrns b ON a.health_record_number = b.health_record_number AND a.unique_id < b.unique_id
            WHERE a.name_pinyin = b.name_pinyin AND a.birth_date = b.birth_date AND (a.is_new OR b.is_new)
        """).df().drop_duplicates(["unique_id_l", "unique_id_r"])
    finally:
        con.close()


def _pair_key(left: pd.Series, right: pd.Series) -> np.ndarray:
    """One text per unordered pair of record ids."""
    lo, hi = left.to_numpy(dtype=object), right.to_numpy(dtype=object)
    swap = lo > hi
    lo, hi = np.where(swap, hi, lo), np.where(swap, lo, hi)
    return lo + "\n" + hi


_EVIDENCE_COLS = ("name", "birth_date", "id18", "phone", "health_record_number", "sex", "address")


class Scorer:
    """Splink's model ready to score (:func:`score`): its database and, on DuckDB, its Linker, made before any
    record is at hand. Making a Linker parses every comparison level's SQL — a fifth of a second of Python a night —
    so the nightly run makes its scorer on a thread while its first SQL runs (:func:`linking.link_pending`). The
    Linker knows the model, not the records: each call scores the frames it is given, blocked by the rules they
    carry. One caller at a time."""

    def __init__(self, settings: dict, backend: str = "duckdb"):
        from splink import DuckDBAPI, Linker

        if backend not in ("duckdb", "spark"):
            raise ValueError(f"identity backend {backend!r} unknown: use duckdb or spark (config/identity.yaml)")
        if backend == "spark":
            from countyhealth.identity.model import settings_for_dialect

            settings = settings_for_dialect(settings, "spark")
        self.backend, self._db, self.linker = backend, None, None
        # weights per comparison instead of the compared values: far less to carry back (see levels_by_weight)
        self.settings = {**settings, "retain_matching_columns": False, "retain_intermediate_calculation_columns": True}
        self.rules = self.settings["blocking_rules_to_generate_predictions"]
        if backend == "duckdb":  # (Spark infers no schema from a frame without rows: its Linker waits for records)
            import duckdb

            self.con = duckdb.connect()
            self._db = DuckDBAPI(connection=self.con)
            model_input = pd.DataFrame({c: pd.Series(dtype=object) for c in sorted(_scoring_columns(self.settings))})
            # settings validation only logs columns it cannot find (ours are checked by _scoring_columns): its SQL
            # parsing took 0.4–0.7 s
            self.linker = Linker(self.register(model_input, "model_input", list(model_input.columns)), self.settings,
                                 validate_settings=False)

    @property
    def db(self):
        if self._db is None:  # (Spark: the session made, or found, when there is something to score)
            self._db = _spark_api()
        return self._db

    def register(self, frame: pd.DataFrame, name: str, columns: list[str]):
        if self.backend == "spark":
            return self.db.register(features.as_objects(frame[columns]), dataset_display_name=name)
        # on DuckDB a view of the frame's columns: a pandas copy of them took 0.2 s a night
        self.con.register(f"{name}_frame", frame)
        self.con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(columns)} FROM {name}_frame")
        return self.db.register(name, dataset_display_name=name)


def score(new: pd.DataFrame, existing: pd.DataFrame | None, settings: dict, *, min_probability: float,
          backend: str = "duckdb", scorer: Scorer | None = None) -> pd.DataFrame:
    """Scored candidate pairs: within ``new`` and between ``new`` and ``existing``. ``scorer``: the model made
    ready (:class:`Scorer`) from these ``settings`` on this ``backend``, else it is made here."""
    from splink import Linker

    scorer = scorer or Scorer(settings, backend)
    carried = set(model.rules_carried([r["blocking_rule"] for r in scorer.rules], new))
    rules = [r for r in scorer.rules if r["blocking_rule"] in carried]
    if not rules:
        return pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
    # only the columns the model and the rules carried read: a night registers 900k linked records with Splink
    keep = _scoring_columns({**scorer.settings, "blocking_rules_to_generate_predictions": rules})
    run = uuid.uuid4().hex[:8]  # a Spark session outlives one call; its temp views must not collide
    new_df = scorer.register(new, f"new_records_{run}", [c for c in new.columns if c in keep])
    linker = scorer.linker or Linker(new_df, scorer.settings, validate_settings=False)
    predict = {"blocking_rules_to_generate_predictions": rules, "threshold_match_probability": min_probability,
               "warning_mode": "never"}
    frames = [linker.inference.predict_within(new_df, **predict).as_pandas_dataframe()]
    if existing is not None and len(existing):
        old_df = scorer.register(existing, f"linked_records_{run}", [c for c in existing.columns if c in keep])
        frames.append(linker.inference.predict_between(new_df, old_df, **predict).as_pandas_dataframe())
    pairs = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
    return pairs


def _scoring_columns(settings: dict) -> set[str]:
    """The feature columns Splink reads: the unique id, the blocking rules' keys, and every ``X_l``/``X_r`` the
    comparison levels compare (any column missed would make Splink fail loudly, not score silently)."""
    cols = {settings.get("unique_id_column_name", "unique_id")}
    for rule in settings["blocking_rules_to_generate_predictions"]:
        cols |= model.rule_columns(rule["blocking_rule"])
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            cols |= set(re.findall(r"(\w+)_[lr]\b", level["sql_condition"]))
    return cols


def _spark_api():
    """Splink's Spark backend on the active Spark session, or a new one (``local[*]`` unless ``spark.master`` /
    ``SPARK_REMOTE`` say otherwise) with Splink's similarity UDF jar and a checkpoint directory — Splink breaks
    long lineages by checkpointing, and Spark refuses to without a directory."""
    try:
        from pyspark.sql import SparkSession
        from splink import SparkAPI
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        raise RuntimeError("identity backend 'spark' needs pyspark (pip install 'countyhealth[spark]') and Java 17 "
                           "or a Spark cluster; or set backend: duckdb in config/identity.yaml") from None
    from countyhealth import settings as project_settings

    spark = SparkSession.getActiveSession()
    if spark is None:
        spark = (SparkSession.builder.appName("countyhealth-identity")
                 .config("spark.sql.warehouse.dir", str(project_settings.data_dir() / "spark-warehouse"))  # not cwd
                 .config("spark.jars", similarity_jar_location())
                 .config("spark.sql.shuffle.partitions", "8")  # Spark's 200 is for clusters, not a nightly delta
                 # local mode's 1 GB heap runs out on a township's worth of records; a cluster sets its own
                 .config("spark.driver.memory", os.environ.get("COUNTYHEALTH_SPARK_DRIVER_MEMORY", "4g"))
                 .config("spark.cleaner.referenceTracking.cleanCheckpoints", "true")  # else they pile up nightly
                 .getOrCreate())
    if spark.sparkContext.getCheckpointDir() is None:
        checkpoints = project_settings.data_dir() / "spark-checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        spark.sparkContext.setCheckpointDir(str(checkpoints))
    # break lineage by Spark checkpoints: Splink's default (Parquet under names starting "__splink__") reads
    # back nothing on Spark 4, which ignores paths that start with an underscore
    return SparkAPI(spark_session=spark, break_lineage_method="checkpoint", num_partitions_on_repartition=8)


def levels_by_weight(settings: dict) -> dict[str, list[tuple[float, int]]]:
    """Per comparison, each level's match weight and its Splink level number (gamma: the null level -1, the
    last "else" level 0, the first non-null level highest). Scoring keeps only the weights — Splink's matching
    columns, a few dozen strings per pair, were 40% of its time — and evidence is read back from them."""
    out = {}
    for comparison in settings["comparisons"]:
        levels = comparison["comparison_levels"]
        gamma = sum(1 for lv in levels if not lv.get("is_null_level")) - 1
        table = []
        for lv in levels:
            if lv.get("is_null_level"):
                table.append((0.0, -1))
                continue
            m, u = lv.get("m_probability"), lv.get("u_probability")
            if m and u:
                table.append((math.log2(m / u), gamma))
            gamma -= 1
        out[comparison["output_column_name"]] = table
    return out


def _evidence(row: dict, levels: dict[str, list[tuple[float, int]]]) -> str:
    """``name:6 birth_date:5 …`` — the level each comparison reached; levels the model weighs the same are
    indistinguishable from the weight and shown together (``address:2|1``)."""
    parts = []
    for col in _EVIDENCE_COLS:
        mw = row.get(f"mw_{col}")
        if mw is None or mw != mw or col not in levels:
            continue
        hits = [g for w, g in levels[col] if abs(w - mw) < 1e-6]
        if hits:
            parts.append(f"{col}:{'|'.join(str(g) for g in sorted(hits, reverse=True))}")
    return " ".join(parts)


class _Groups:
    """Union-find over records that keeps each group's members (groups are small: one resident's records).
    Records enter when an edge or a person touches them: the rest stay alone and cost nothing."""

    def __init__(self):
        self.parent: dict[str, str] = {}
        self.members: dict[str, list[str]] = {}

    def find(self, x: str) -> str:
        if x not in self.parent:
            self.parent[x] = x
            self.members[x] = [x]
            return x
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        return ra


_RECORD_COLUMNS = ("unique_id", "health_record_number") + guards.COLUMNS


class _Rows:
    """Feature rows as dicts, made only for the records a guard looks at (a million dicts cost seconds)."""

    def __init__(self, records: pd.DataFrame):
        self.index = pd.Index(records["unique_id"])  # unique: hashed once, looked up column-wise or one by one
        self._cols = {c: records[c].to_numpy(dtype=object) for c in guards.COLUMNS if c in records}
        self._cache: dict[str, dict] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self.index

    def at(self, uid: str) -> int:
        return self.index.get_loc(uid)

    def positions(self, uids: pd.Series) -> np.ndarray:
        return self.index.get_indexer(uids)

    def __getitem__(self, uid: str) -> dict:
        row = self._cache.get(uid)
        if row is None:
            i = self.index.get_loc(uid)
            row = self._cache[uid] = {c: v[i] for c, v in self._cols.items()}
        return row


def _edge(rec, levels: dict) -> Edge:
    """An edge someone will read (queued for review, or refused by a guard), with its evidence: the reason a
    deterministic or manual edge was made, or the level each comparison reached, read from the match weights."""
    evidence = rec.evidence if isinstance(rec.evidence, str) else ""
    if not evidence and rec.kind == "probabilistic":
        evidence = _evidence(rec._asdict(), levels)
    return Edge(rec.unique_id_l, rec.unique_id_r, float(rec.match_probability), rec.kind, evidence)


# components larger than this are clustered edge by edge without listing their pairs: a key shared by thousands of
# records (a placeholder phone, a clinic's address) must not become millions of pairs to check
_SMALL_COMPONENT = 64


def _edges(new: pd.DataFrame, existing: pd.DataFrame | None, new_set: set[str], *, settings: dict,
           thresholds: Thresholds, accepted: set[frozenset], backend: str, scorer: Scorer | None = None,
           every_scored_pair: bool = False) -> pd.DataFrame:
    """Scored pairs (deterministic ones among them lifted to 1.0), the deterministic pairs the model did not
    score, and reviewers' accepted pairs; evidence text only where someone will read it."""
    floor = 0.0 if every_scored_pair else min(thresholds.review, 0.5)
    pairs = score(new, existing, settings, min_probability=floor, backend=backend, scorer=scorer) \
        if len(new) else pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
    weight_cols = [f"mw_{c}" for c in _EVIDENCE_COLS if f"mw_{c}" in pairs]
    scored = pairs[["unique_id_l", "unique_id_r", "match_probability"] + weight_cols].copy()
    scored["match_probability"] = scored["match_probability"].astype(float)
    scored["kind"] = "probabilistic"
    scored["evidence"] = None  # read from the weights when someone will read it (:func:`_edge`)
    det = _deterministic_pairs(new, existing)
    if len(det) and len(scored):
        # a scored pair that is also deterministic is lifted to 1.0; the rest are added
        det_keys = pd.Series(_pair_key(det["unique_id_l"], det["unique_id_r"]))
        scored_keys = pd.Series(_pair_key(scored["unique_id_l"], scored["unique_id_r"]))
        lifted = det_keys.isin(scored_keys).to_numpy()
        both = scored_keys.isin(det_keys).to_numpy()
        scored.loc[both, ["kind", "match_probability"]] = ["deterministic", 1.0]
        det = det[~lifted]
    decided = {uid for pair in accepted for uid in pair}
    present = new_set | (set(existing["unique_id"][existing["unique_id"].isin(decided)]) if existing is not None
                         else set())
    manual = [(a, b) for a, b in (tuple(p) for p in accepted) if a in present and b in present and
              (a in new_set or b in new_set)]
    parts = [scored, det.assign(match_probability=1.0, kind="deterministic"),
             pd.DataFrame({"unique_id_l": [a for a, _ in manual], "unique_id_r": [b for _, b in manual],
                           "match_probability": 1.0, "kind": "manual", "evidence": "accepted by a reviewer"})]
    edges = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else scored
    edges["match_probability"] = edges["match_probability"].astype(float)
    return edges


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` records joined by the edges ``left[i]``–``right[i]``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _conflicted(labels: np.ndarray, start: np.ndarray, records: pd.DataFrame, rows: _Rows, *,
                accepted: set[frozenset], rejected: set[frozenset]) -> set[int]:
    """Components holding two records of different starting groups (existing persons, or single records) that
    a guard or a reviewer keeps apart — or too large to list their pairs. Every other component becomes one
    person exactly as edge-by-edge clustering would make it: each join it checks would pass."""
    frame = pd.DataFrame({"label": labels, "start": start, "idx": np.arange(len(labels))})
    starts = frame.drop_duplicates(["label", "start"])["label"].value_counts()
    joining = starts.index[starts.to_numpy() >= 2]
    sizes = frame["label"].value_counts()
    large = set(joining[sizes.reindex(joining).to_numpy() > _SMALL_COMPONENT].tolist())
    small = frame[frame["label"].isin(joining) & ~frame["label"].isin(large)]
    pairs = small.merge(small, on="label", suffixes=("_l", "_r"))
    pairs = pairs[(pairs["idx_l"] < pairs["idx_r"]) & (pairs["start_l"] != pairs["start_r"])]
    out = set(large)
    if len(pairs):
        cols = list(guards.COLUMNS)
        left = records[cols].iloc[pairs["idx_l"].to_numpy()]
        right = records[cols].iloc[pairs["idx_r"].to_numpy()]
        flagged = pairs[guards.may_keep_apart(left, right)]
        uids = records["unique_id"].to_numpy()
        for label, i, j in zip(flagged["label"], flagged["idx_l"], flagged["idx_r"]):
            if label in out or frozenset((uids[i], uids[j])) in accepted:
                continue
            if guards.reason_to_keep_apart(rows[uids[i]], rows[uids[j]]):
                out.add(label)
    for pair in rejected:
        a, b = tuple(pair)
        if a in rows and b in rows:
            i, j = rows.at(a), rows.at(b)
            if labels[i] == labels[j] and start[i] != start[j]:
                out.add(int(labels[i]))
    return out


def _persons_in_order(existing: pd.DataFrame, existing_person: dict[str, str]) -> np.ndarray:
    """Each linked record's person (None if it has none), in the frame's order. The pipeline and the benchmark build
    the dict from the frame, in its order: then the persons are the dict's values as they stand (a million
    lookups one by one took half a second)."""
    uids = existing["unique_id"].to_numpy(dtype=object)
    if len(existing_person) == len(uids):
        keys = np.fromiter(existing_person.keys(), dtype=object, count=len(uids))
        if (keys == uids).all():
            return np.fromiter(existing_person.values(), dtype=object, count=len(uids))
    get = existing_person.get
    return np.array([get(uid) for uid in uids], dtype=object)


def _reachable(existing: pd.DataFrame, index: pd.Index, person: np.ndarray, edges: pd.DataFrame,
               decided: set[frozenset]) -> np.ndarray:
    """Which linked records clustering must see: those an edge or a reviewer's decision reaches, and every record of
    their persons (the guards judge whole persons). Every other linked record's person stands as it was — nothing
    touches it — so clustering leaves it out: a night against a million records clusters a fraction of them.
    ``index``: the frame's record ids; ``person``: each record's person, in the frame's order."""
    ends = np.concatenate([edges["unique_id_l"].to_numpy(dtype=object), edges["unique_id_r"].to_numpy(dtype=object),
                           np.array([uid for pair in decided for uid in pair], dtype=object)])
    at = index.get_indexer(pd.unique(ends))
    at = at[at >= 0]  # the night's own records are not in the frame
    reached = np.zeros(len(existing), dtype=bool)
    reached[at] = True
    persons = set(person[at]) - {None}
    if persons:
        reached |= pd.Series(person).isin(persons).to_numpy()
    return reached


def link(new: pd.DataFrame, existing: pd.DataFrame, existing_person: dict[str, str], *, settings: dict,
         thresholds: Thresholds, mint, previous_person: dict[str, str] | None = None,
         accepted: set[frozenset] = frozenset(), rejected: set[frozenset] = frozenset(),
         backend: str = "duckdb", rescore=None, scorer: Scorer | None = None) -> LinkResult:
    """Place ``new`` records. ``existing`` are linked records (features) that may be theirs, with
    ``existing_person`` record → person; ``previous_person`` is where records in ``new`` that changed were
    linked before (a changed record is placed again from scratch, and moves if the evidence says so);
    ``mint()`` returns a fresh person id. ``accepted``/``rejected`` are reviewers' decisions as frozensets of
    two record ids.

    Clustering gives the persons that taking every auto-link edge strongest first, under the guards, would give —
    in two passes, because a million records make hundreds of thousands of edges: the edges and the existing
    persons form connected components; a component in which nothing keeps two of its records apart (checked
    column-wise, :func:`guards.may_keep_apart`) is one person as it stands, and only the few others are
    clustered edge by edge.

    ``rescore(edges)``, when given, re-estimates the edges' probabilities before clustering (every scored pair,
    not only those above the review threshold, reaches it): :mod:`.one_to_one` for sources that hold one record
    per person. ``scorer``: the model made ready (:class:`Scorer`), if it was."""
    previous_person = previous_person or {}
    new = new.drop_duplicates("unique_id", keep="last")
    index = None
    if existing is not None and len(existing):
        index = pd.Index(existing["unique_id"])  # hashed once: changed records, then the records edges reach
        if not index.is_unique:  # a record handed over twice: its last features count
            existing = existing.drop_duplicates("unique_id", keep="last")
            index = pd.Index(existing["unique_id"])
        stale = index.get_indexer(new["unique_id"])
        if (stale >= 0).any():  # a changed record (in both): its new features count
            existing = existing[~np.isin(np.arange(len(existing)), stale[stale >= 0])]
            index = pd.Index(existing["unique_id"])
    else:
        existing = None
    new_set = set(new["unique_id"])
    edges = _edges(new, existing, new_set, settings=settings, thresholds=thresholds, accepted=accepted,
                   backend=backend, scorer=scorer, every_scored_pair=rescore is not None)
    if rescore is not None:
        edges = rescore(edges)
    # what clustering reads of each record (scoring read the frames themselves): the night's records and the linked
    # ones an edge or a decision reaches, with their persons — not a million linked records copied whole
    cols = list(_RECORD_COLUMNS)
    if existing is not None:
        person_before = _persons_in_order(existing, existing_person)
        reached = _reachable(existing, index, person_before, edges, accepted | rejected)
        records = pd.concat([features.as_objects(existing.loc[reached, cols]), features.as_objects(new[cols])],
                            ignore_index=True)
        person = np.concatenate([person_before[reached], np.full(len(new), None, dtype=object)])
    else:
        records, person = features.as_objects(new[cols]).reset_index(drop=True), np.full(len(new), None, dtype=object)
    rows = _Rows(records)
    uids = records["unique_id"]
    n = len(records)
    is_new = np.zeros(n, dtype=bool)
    is_new[n - len(new):] = True
    levels = levels_by_weight(settings)

    order = edges["kind"].map({"manual": 0, "deterministic": 1, "probabilistic": 2})
    take = edges[(order < 2) | (edges["match_probability"] >= thresholds.auto_link)]
    take = take.assign(_order=order[take.index]).sort_values(["_order", "match_probability"],
                                                            ascending=[True, False], kind="stable")
    # records already linked to one person start as one group (a person is not re-decided from scratch); a changed
    # record is placed anew, on its own
    person = pd.Series(person, dtype=object)
    person_code, person_ids = pd.factorize(person, sort=True)  # codes in id order: the lowest is the oldest id
    linked = person_code >= 0
    start = np.where(linked, person_code, len(person_code) + np.arange(n))
    first_of_person = pd.Series(np.arange(n))[linked].groupby(person_code[linked]).transform("first")
    take_l = rows.positions(take["unique_id_l"]).astype(np.int64)
    take_r = rows.positions(take["unique_id_r"]).astype(np.int64)
    labels = _components(n, np.concatenate([take_l, first_of_person.index.to_numpy()]),
                         np.concatenate([take_r, first_of_person.to_numpy()]))
    conflicted = _conflicted(labels, start, records, rows, accepted=accepted, rejected=rejected)

    result = LinkResult({}, {})
    # how each record was linked: the first edge to reach it — edges come strongest first, and the first always
    # joins a record still on its own. Components with conflicts are decided edge by edge, below.
    clean = ~np.isin(labels[take_l], list(conflicted)) if conflicted else np.ones(len(take), dtype=bool)
    ends = np.column_stack([take_l, take_r])[clean].ravel()
    edge_of_end = np.repeat(np.flatnonzero(clean), 2)
    reached, first = np.unique(ends, return_index=True)
    kind_of = np.full(n, "new", dtype=object)
    p_of = np.full(n, np.nan)
    kind_of[reached] = take["kind"].to_numpy()[edge_of_end[first]]
    p_of[reached] = take["match_probability"].to_numpy()[edge_of_end[first]]
    final = labels.astype(np.int64)
    if conflicted:
        best: dict[str, tuple[str, float]] = {}
        # each existing person in those components, with its records
        inside = np.isin(labels, list(conflicted)) & linked
        members = pd.Series(uids.to_numpy()[inside]).groupby(person.to_numpy()[inside]).agg(list).to_dict()
        roots = _cluster_edge_by_edge(take[~clean], rows, new_set, existing_person, members, accepted, rejected,
                                      best, result, levels)
        for uid, root in roots.items():
            final[rows.at(uid)] = n + rows.at(root)
        for uid, (kind, p) in best.items():
            kind_of[rows.at(uid)], p_of[rows.at(uid)] = kind, p
    _assign_persons(result, records, final, is_new, person_code, np.asarray(person_ids, dtype=object), mint,
                    previous_person, held=set(existing_person.values()))
    new_uids = uids.to_numpy(dtype=object)[is_new]
    result.link_kind.update(zip(new_uids, ((k, None if p != p else float(p))
                                           for k, p in zip(kind_of[is_new], p_of[is_new]))))
    for uid, old in previous_person.items():
        to = result.person_of.get(uid)
        if uid in new_set and old and to and old != to:
            result.moves.append((uid, old, to))
    result.review = _review_band(edges, result, existing_person, thresholds, accepted, rejected, levels, rows)
    return result


def _cluster_edge_by_edge(take: pd.DataFrame, rows: _Rows, new_set: set[str], existing_person: dict[str, str],
                          by_person: dict[str, list[str]], accepted: set[frozenset], rejected: set[frozenset],
                          best: dict[str, tuple[str, float]], result: LinkResult, levels: dict) -> dict[str, str]:
    """Constrained clustering of the components where something keeps records apart: edges strongest first, two
    groups join only if no pair across them is forbidden. ``by_person``: the records of each existing person in
    these components. Returns each touched record's group root; refused edges go to ``result.blocked``."""
    groups = _Groups()
    formed: set[str] = set()

    def group_of(uid: str) -> str:
        # an existing person's records join as one group when an edge first touches one of them
        person = existing_person.get(uid) if uid not in new_set else None
        if person is not None and person not in formed:
            formed.add(person)
            members = by_person.get(person, ())
            for m in members[1:]:
                groups.union(members[0], m)
        return groups.find(uid)

    def forbidden(ga: str, gb: str) -> str | None:
        for x in groups.members[ga]:
            for y in groups.members[gb]:
                if frozenset((x, y)) in rejected:
                    return "rejected by a reviewer"
                if frozenset((x, y)) in accepted:
                    continue
                why = guards.reason_to_keep_apart(rows[x], rows[y])
                if why:
                    return why
        return None

    for rec in take.itertuples(index=False):
        ga, gb = group_of(rec.unique_id_l), group_of(rec.unique_id_r)
        if ga == gb:
            continue
        why = forbidden(ga, gb) if rec.kind != "manual" else None
        if why:
            result.blocked.append((_edge(rec, levels), why))
            continue
        groups.union(ga, gb)
        p = float(rec.match_probability)
        for uid in (rec.unique_id_l, rec.unique_id_r):
            if uid in new_set and (uid not in best or p > best[uid][1]):
                best[uid] = (rec.kind, p)
    return {uid: groups.find(uid) for uid in list(groups.parent)}


def _assign_persons(result: LinkResult, records: pd.DataFrame, final: np.ndarray, is_new: np.ndarray,
                    rank: np.ndarray, names: np.ndarray, mint, previous_person: dict[str, str], *,
                    held: set[str]) -> None:
    """Persons for the groups (``final``: a group label per record) that hold new records or join existing
    persons: the oldest existing id survives (the others redirect to it, recorded as merges, via the group's first
    new record); a group of new records only gets its records' previous person or a fresh id (:func:`_fresh_ids`;
    ``held``: every linked record's person). A group of one
    existing person that nothing new reached needs no visit. ``rank``: each record's existing person as a code
    into ``names`` (sorted; -1 for none). Column-wise: from scratch, a million groups."""
    group, _ = pd.factorize(final)  # numbered in order of first record
    n_groups = int(group.max()) + 1 if len(group) else 0
    has_new = np.bincount(group, weights=is_new, minlength=n_groups) > 0
    with_person = rank >= 0
    pairs = np.unique(group[with_person].astype(np.int64) * (len(names) + 1) + rank[with_person].astype(np.int64))
    pair_group, pair_rank = pairs // (len(names) + 1), pairs % (len(names) + 1)
    n_persons = np.bincount(pair_group, minlength=n_groups)
    lowest = np.full(n_groups, -1)
    lowest_groups, at = np.unique(pair_group, return_index=True)  # pairs are sorted: the first is the lowest id
    lowest[lowest_groups] = pair_rank[at]
    emit = has_new | (n_persons >= 2)
    survivor = np.full(n_groups, None, dtype=object)
    survivor[lowest >= 0] = names[lowest[lowest >= 0]]
    uids = records["unique_id"].to_numpy(dtype=object)
    fresh = np.flatnonzero(emit & (lowest < 0))
    ids, minted = _fresh_ids(fresh, group, uids, is_new, previous_person, held, mint)
    survivor[fresh] = ids
    result.new_persons.extend(minted)
    members = emit[group]
    result.person_of.update(zip(uids[members], survivor[group[members]]))
    merged = emit[pair_group] & (pair_rank != lowest[pair_group])
    if merged.any():
        first_any = np.unique(group, return_index=True)[1]
        via = uids[first_any]
        new_groups, first_new = np.unique(group[is_new], return_index=True)
        via[new_groups] = uids[is_new][first_new]
        result.merges.extend(zip(survivor[pair_group[merged]], names[pair_rank[merged]], via[pair_group[merged]]))


def _fresh_ids(fresh: np.ndarray, group: np.ndarray, uids: np.ndarray, is_new: np.ndarray,
               previous_person: dict[str, str], held: set[str], mint) -> tuple[list[str], list[str]]:
    """Ids for the groups in ``fresh`` (no linked record in them), and which of them were minted. A group of
    re-placed records only — a changed record whose person has no other record, or a person all of whose records
    changed at once — keeps the person most of its records were in, when nothing in ``held`` (every person a
    linked record still stands in: the caller hands over all records of those persons) holds it still: an id
    changes only when the evidence moves records. Other groups get a fresh id, minted in the order records came."""
    previous_of: dict[int, list[str]] = {}
    if previous_person:
        for i in np.flatnonzero(is_new):
            before = previous_person.get(uids[i])
            if before:
                previous_of.setdefault(int(group[i]), []).append(before)
    ids, minted = [], []
    for g in fresh:
        counts = Counter(p for p in previous_of.get(int(g), ()) if p not in held)
        if counts:
            kept = min(counts, key=lambda p: (-counts[p], p))
            held.add(kept)
            ids.append(kept)
        else:
            minted.append(mint())
            ids.append(minted[-1])
    return ids, minted


def decided_by(a: dict | None, b: dict | None, probability: float, thresholds: Thresholds) -> str:
    """Which rule or guard left a pair to a reviewer, in their words: a guard that refused it ("guard: different
    sex, ID parity says female"), one that yielded to stronger evidence, or the score between the thresholds."""
    why, yielded = guards.decision(a, b) if a is not None and b is not None else (None, None)
    if why:
        return f"guard: {why}"
    band = f"score {probability:.3f} between review {thresholds.review} and auto-link {thresholds.auto_link}"
    return f"{band}; guard yielded: {yielded}" if yielded else band


def _review_band(edges: pd.DataFrame, result: LinkResult, existing_person: dict[str, str], thresholds: Thresholds,
                 accepted: set[frozenset], rejected: set[frozenset], levels: dict, rows: _Rows | None = None
                 ) -> list[Edge]:
    """For a person to decide: pairs between the thresholds, and strong pairs a guard refused, that ended in
    different persons — each with what decided it (:func:`decided_by`) before its comparison levels."""
    out, seen = [], set()

    def row(uid: str) -> dict | None:
        return rows[uid] if rows is not None and uid in rows else None

    def apart(left: str, right: str) -> bool:
        return (result.person_of.get(left, existing_person.get(left))
                != result.person_of.get(right, existing_person.get(right)))

    for edge, why in result.blocked:
        key = frozenset((edge.left, edge.right))
        if key in seen or key in rejected or key in accepted or not apart(edge.left, edge.right):
            continue
        seen.add(key)
        out.append(Edge(edge.left, edge.right, edge.probability, edge.kind,
                        f"guard: {why}" + (f"; {edge.evidence}" if edge.evidence else "")))
    band = edges[edges["kind"].eq("probabilistic") & edges["match_probability"].ge(thresholds.review)
                 & edges["match_probability"].lt(thresholds.auto_link)]
    for rec in band.itertuples(index=False):
        key = frozenset((rec.unique_id_l, rec.unique_id_r))
        if key in seen or key in rejected or key in accepted:
            continue
        seen.add(key)
        if apart(rec.unique_id_l, rec.unique_id_r):
            edge = _edge(rec, levels)
            rule = decided_by(row(rec.unique_id_l), row(rec.unique_id_r), edge.probability, thresholds)
            out.append(Edge(edge.left, edge.right, edge.probability, edge.kind,
                            f"{rule}; {edge.evidence}" if edge.evidence else rule))
    return out


def default_settings() -> dict:
    return model.load_settings()
