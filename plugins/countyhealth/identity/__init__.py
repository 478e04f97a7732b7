"""The EMPI: which source records belong to the same resident.

:func:`run` is the nightly stage: it takes the person records that are new or changed since the last run,
finds the already-linked records that could be theirs (by blocking keys, in SQL over hashed features),
scores pairs with the Fellegi–Sunter model (:mod:`.model`, Splink 5), clusters under hard guards
(:mod:`.guards`, :mod:`.engine`), and writes — in one transaction — links, new persons, merge and split
events, the review queue and golden records. Person ids never change: new ones are minted only for new
people, a merged person keeps its row and redirects to the survivor (:func:`resolve`).

Configuration: ``config/identity.yaml`` (thresholds, trust order, backend). Model: ``identity/model.json``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import time
import uuid
from dataclasses import dataclass, field


import yaml

from countyhealth import settings

log = logging.getLogger(__name__)


@dataclass
class IdentityConfig:
    auto_link: float = 0.999
    review: float = 0.5
    trust: list[str] = field(default_factory=list)
    backend: str = "duckdb"
    identifier_viewers: list[str] = field(default_factory=list)

    def trust_rank(self, source_id: str) -> int:
        for i, pattern in enumerate(self.trust):
            if fnmatch.fnmatch(source_id, pattern):
                return i
        return len(self.trust)


def load_config() -> IdentityConfig:
    path = settings.config_dir() / "identity.yaml"
    if not path.exists():
        return IdentityConfig()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    th = data.get("thresholds", {})
    cfg = IdentityConfig(auto_link=float(th.get("auto_link", 0.999)), review=float(th.get("review", 0.5)),
                         trust=list(data.get("trust", [])), backend=data.get("backend", "duckdb"),
                         identifier_viewers=list(data.get("identifier_viewers") or []))
    if cfg.backend not in ("duckdb", "spark"):
        raise ValueError(f"config/identity.yaml: backend {cfg.backend!r} unknown: use duckdb (one machine) or spark "
                         f"(pip install 'countyhealth[spark]')")
    if not 0 < cfg.review < cfg.auto_link <= 1:
        raise ValueError(f"config/identity.yaml: thresholds must satisfy 0 < review < auto_link <= 1 "
                         f"(got review {cfg.review}, auto_link {cfg.auto_link})")
    return cfg


@dataclass
class IdentityRunSummary:
    run_id: str
    records_considered: int = 0
    linked_deterministic: int = 0
    linked_probabilistic: int = 0
    linked_manual: int = 0
    new_persons: int = 0
    queued_for_review: int = 0
    merges: int = 0
    splits: int = 0
    blocked_by_guards: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step, in order (read, features, …)


def run(wh, *, run_id: str | None = None, config: IdentityConfig | None = None,
        model_path=None) -> IdentityRunSummary:
    from countyhealth.identity.linking import link_pending

    cfg = config or load_config()
    run_id = run_id or f"identity-{dt.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    summary = link_pending(wh, cfg, run_id, model_path=model_path)
    summary.seconds = round(time.monotonic() - started, 2)
    log.info("identity %s: %d records → %d deterministic, %d probabilistic, %d manual links, %d new persons, "
             "%d merges, %d splits, %d queued for review (%.1fs: %s)", run_id, summary.records_considered,
             summary.linked_deterministic, summary.linked_probabilistic, summary.linked_manual, summary.new_persons,
             summary.merges, summary.splits, summary.queued_for_review, summary.seconds,
             ", ".join(f"{k} {v:.1f}" for k, v in summary.steps.items()))
    return summary


def resolve(wh, person_id: str) -> str:
    """The active person a (possibly merged) person id now stands for."""
    import sqlalchemy as sa

    seen = set()
    with wh.engine.connect() as conn:
        while person_id not in seen:
            seen.add(person_id)
            row = conn.execute(sa.text("SELECT status, merged_into FROM empi_person WHERE person_id = :p"),
                               {"p": person_id}).first()
            if row is None:
                from countyhealth.errors import NotFound

                raise NotFound(f"no person {person_id} (person ids look like P0000000042; "
                               "see `countyhealth identity status`)")
            if row[0] != "merged" or not row[1]:
                return person_id
            person_id = row[1]
    raise RuntimeError(f"merge redirects loop at {person_id}")


