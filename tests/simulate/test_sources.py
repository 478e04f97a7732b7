"""Source YAMLs for a simulated county: the repository's sources/ are exactly the default county's."""

from __future__ import annotations

from countyhealth import settings
from countyhealth.connectors.config import load_sources
from countyhealth.simulate.county import CountyConfig, County
from countyhealth.simulate.sources import write_sources


def test_committed_sources_are_the_default_countys(tmp_path):
    county = tmp_path / "county"
    County(county, CountyConfig(residents=10, days=0))._write_registry_only()
    out = tmp_path / "sources"
    write_sources(county, out)
    repo = settings.project_home() / "sources"
    for path in sorted(out.glob("his_*.yaml")):
        assert path.read_text(encoding="utf-8") == (repo / path.name).read_text(encoding="utf-8"), path.name
    assert sorted(p.name for p in repo.glob("his_*.yaml")) == sorted(p.name for p in out.glob("his_*.yaml"))


def test_a_small_county_gets_a_loadable_source_set(county, tmp_path):
    out, manifest = county
    sources = load_sources(write_sources(out, tmp_path / "s")[0].parent)
    assert {s for s in sources if s.startswith("his_")} == set(manifest["his"])
