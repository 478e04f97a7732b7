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
import os
import uuid
from dataclasses import dataclass, field

import pandas as pd

from countyhealth.identity import guards, model

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


def _deterministic(a: dict, b: dict) -> bool:
    """Safe without a model: same valid ID with the same name, or the same health-record number with the same
    name and birth date."""
    if a.get("id_valid") and a.get("id18") and a.get("id18") == b.get("id18") and b.get("id_valid"):
        return a.get("name_pinyin") is not None and a.get("name_pinyin") == b.get("name_pinyin")
    if a.get("health_record_number") and a.get("health_record_number") == b.get("health_record_number"):
        return a.get("name_pinyin") == b.get("name_pinyin") and a.get("birth_date") == b.get("birth_date")
    return False


def _deterministic_edges(rows: dict[str, dict], new_set: set[str]) -> list[Edge]:
    """Deterministic links found directly (not only among the pairs the model scored): records sharing a
    valid ID or a health-record number, checked by :func:`_deterministic`."""
    out = []
    for key in ("id18", "health_record_number"):
        groups: dict[str, list[str]] = {}
        for uid, r in rows.items():
            if r.get(key) and (key != "id18" or r.get("id_valid")):
                groups.setdefault(r[key], []).append(uid)
        for members in groups.values():
            if len(members) < 2 or not any(m in new_set for m in members):
                continue
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if (a in new_set or b in new_set) and _deterministic(rows[a], rows[b]):
                        out.append(Edge(a, b, 1.0, "deterministic", f"same {key}"))
    return out


_EVIDENCE_COLS = ("name", "birth_date", "id18", "phone", "health_record_number", "sex", "address")


def score(new: pd.DataFrame, existing: pd.DataFrame | None, settings: dict, *, min_probability: float,
          backend: str = "duckdb") -> pd.DataFrame:
    """Scored candidate pairs: within ``new`` and between ``new`` and ``existing``."""
    from splink import DuckDBAPI, Linker

    if backend == "spark":
        from countyhealth.identity.model import settings_for_dialect

        db = _spark_api()
        settings = settings_for_dialect(settings, "spark")
    elif backend == "duckdb":
        db = DuckDBAPI()
    else:
        raise ValueError(f"identity backend {backend!r} unknown: use duckdb or spark (config/identity.yaml)")
    run = uuid.uuid4().hex[:8]  # a Spark session outlives one call; its temp views must not collide
    new_df = db.register(new, dataset_display_name=f"new_records_{run}")
    linker = Linker(new_df, settings)
    frames = [linker.inference.predict_within(new_df, threshold_match_probability=min_probability,
                                              warning_mode="never").as_pandas_dataframe()]
    if existing is not None and len(existing):
        old_df = db.register(existing, dataset_display_name=f"linked_records_{run}")
        frames.append(linker.inference.predict_between(new_df, old_df, threshold_match_probability=min_probability,
                                                       warning_mode="never").as_pandas_dataframe())
    pairs = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
    return pairs


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


def _evidence(row) -> str:
    parts = []
    for col in _EVIDENCE_COLS:
        g = row.get(f"gamma_{col}")
        if g is not None and g == g:
            parts.append(f"{col}:{int(g)}")
    return " ".join(parts)


class _Groups:
    """Union-find over records that keeps each group's members (groups are small: one resident's records)."""

    def __init__(self):
        self.parent: dict[str, str] = {}
        self.members: dict[str, list[str]] = {}

    def add(self, x: str) -> None:
        if x not in self.parent:
            self.parent[x] = x
            self.members[x] = [x]

    def find(self, x: str) -> str:
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


def link(new: pd.DataFrame, existing: pd.DataFrame, existing_person: dict[str, str], *, settings: dict,
         thresholds: Thresholds, mint, previous_person: dict[str, str] | None = None,
         accepted: set[frozenset] = frozenset(), rejected: set[frozenset] = frozenset(),
         backend: str = "duckdb") -> LinkResult:
    """Place ``new`` records. ``existing`` are linked records (features) that may be theirs, with
    ``existing_person`` record → person; ``previous_person`` is where records in ``new`` that changed were
    linked before (a changed record is placed again from scratch, and moves if the evidence says so);
    ``mint()`` returns a fresh person id. ``accepted``/``rejected`` are reviewers' decisions as frozensets of
    two record ids."""
    previous_person = previous_person or {}
    rows: dict[str, dict] = {}
    for frame in (existing, new):
        if frame is not None and len(frame):
            for rec in frame.to_dict("records"):
                rows[rec["unique_id"]] = rec
    new_ids = list(new["unique_id"]) if len(new) else []
    new_set = set(new_ids)
    pairs = score(new, existing, settings, min_probability=min(thresholds.review, 0.5), backend=backend) \
        if len(new) else pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])

    edges: list[Edge] = []
    for rec in pairs.to_dict("records"):
        a, b, p = rec["unique_id_l"], rec["unique_id_r"], float(rec["match_probability"])
        if a not in rows or b not in rows:
            continue
        kind = "deterministic" if _deterministic(rows[a], rows[b]) else "probabilistic"
        edges.append(Edge(a, b, 1.0 if kind == "deterministic" else p, kind, _evidence(rec)))
    edges.extend(_deterministic_edges(rows, new_set))
    for pair in accepted:
        a, b = tuple(pair)
        if a in rows and b in rows and (a in new_set or b in new_set):
            edges.append(Edge(a, b, 1.0, "manual", "accepted by a reviewer"))

    groups = _Groups()
    for uid in rows:
        groups.add(uid)
    # records already linked to one person start as one group: a person is not re-decided from scratch
    by_person: dict[str, list[str]] = {}
    for uid, person in existing_person.items():
        if uid in rows and uid not in new_set:
            by_person.setdefault(person, []).append(uid)
    for members in by_person.values():
        for m in members[1:]:
            groups.union(members[0], m)

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

    result = LinkResult({}, {})
    best: dict[str, tuple[str, float]] = {}
    order = {"manual": 0, "deterministic": 1, "probabilistic": 2}
    for edge in sorted(edges, key=lambda e: (order[e.kind], -e.probability)):
        if edge.kind == "probabilistic" and edge.probability < thresholds.auto_link:
            continue
        ga, gb = groups.find(edge.left), groups.find(edge.right)
        if ga == gb:
            continue
        why = forbidden(ga, gb) if edge.kind != "manual" else None
        if why:
            result.blocked.append((edge, why))
            continue
        groups.union(ga, gb)
        for uid in (edge.left, edge.right):
            if uid in new_set and (uid not in best or edge.probability > best[uid][1]):
                best[uid] = (edge.kind, edge.probability)

    # persons for the groups that hold new records
    survivors: dict[str, str] = {}
    for root, members in groups.members.items():
        persons = sorted({existing_person[m] for m in members if m in existing_person and m not in new_set})
        if not any(m in new_set for m in members) and len(persons) <= 1:
            continue
        if persons:
            survivor = persons[0]  # the oldest id survives; the others redirect to it
            for other in persons[1:]:
                via = next((m for m in members if m in new_set), members[0])
                result.merges.append((survivor, other, via))
        else:
            survivor = mint()
            result.new_persons.append(survivor)
        survivors[root] = survivor
        for m in members:
            result.person_of[m] = survivor
            if m in new_set:
                result.link_kind[m] = best.get(m, ("new", None))
            old = previous_person.get(m)
            if old and old != survivor and m in new_set:
                result.moves.append((m, old, survivor))
    # the uncertain band goes to a person to decide
    seen = set()
    for edge in edges:
        if edge.kind != "probabilistic" or not (thresholds.review <= edge.probability < thresholds.auto_link):
            continue
        key = frozenset((edge.left, edge.right))
        if key in seen or key in rejected or key in accepted:
            continue
        seen.add(key)
        pa_ = result.person_of.get(edge.left, existing_person.get(edge.left))
        pb_ = result.person_of.get(edge.right, existing_person.get(edge.right))
        if pa_ != pb_:
            result.review.append(edge)
    return result


def default_settings() -> dict:
    return model.load_settings()
