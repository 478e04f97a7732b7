"""Small county settings shared by the simulator tests."""

from __future__ import annotations

from countyhealth.simulate.county import CountyConfig


def small_config(**kw) -> CountyConfig:
    base = dict(seed=7, residents=2500, days=3, county_hospitals=2, townships=3, villages_per_township=4)
    base.update(kw)
    return CountyConfig(**base)
