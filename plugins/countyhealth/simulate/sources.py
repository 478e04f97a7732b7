"""Source YAMLs for a simulated county of any shape: one per member HIS (extending its vendor's template),
plus the public-health, contract and registry sources. The repository's ``sources/`` holds the set for the
default county; a test checks that this writes exactly those."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from countyhealth import settings

SHARED = ("public_health.yaml", "contracts.yaml", "registry.yaml")
# sources a county has only when generated with them (their YAML lives with the docs' worked examples)
OPTIONAL = {"regional_lab": "docs/examples/sources/lis_regional.yaml"}


def member_yaml(code: str, name: str, level: str, vendor: str) -> str:
    kind = "county-level hospital" if level == "county" else "township health centre"
    v = vendor.lower()
    return (f"# {name} — {kind}, HIS of vendor {vendor}\n"
            f"extends: _vendors/his_vendor_{v}.yaml\n"
            f"description: {name} HIS\n"
            f"facility_code: {code}\n"
            f"connection: {{conn_id: his_{code.lower()}}}\n")


def write_sources(county_dir: Path, out: Path, *, template_dir: Path | None = None) -> list[Path]:
    """Write the county's source YAMLs into ``out`` (templates and shared sources copied from the project)."""
    template_dir = template_dir or settings.project_home() / "sources"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template_dir / "_vendors", out / "_vendors", dirs_exist_ok=True)
    written = []
    for name in SHARED:
        shutil.copy2(template_dir / name, out / name)
        written.append(out / name)
    has = json.loads((county_dir / "county.json").read_text()) if (county_dir / "county.json").exists() else {}
    for part, example in OPTIONAL.items():
        if has.get(part):
            written.append(Path(shutil.copy2(settings.project_home() / example, out / Path(example).name)))
    with (county_dir / "registry" / _registry_file(county_dir)).open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row["his_vendor"]:
                continue  # village clinics are recorded in their township centre's HIS
            path = out / f"his_{row['facility_code'].lower()}.yaml"
            path.write_text(member_yaml(row["facility_code"], row["name"], row["level"], row["his_vendor"]),
                            encoding="utf-8")
            written.append(path)
    return written


def _registry_file(county_dir: Path) -> str:
    found = sorted((county_dir / "registry").glob("facilities*.csv"))
    if found:
        return found[0].name
    archived = sorted((county_dir / "registry" / "archive").rglob("facilities*.csv"))
    if archived:
        return str(archived[0].relative_to(county_dir / "registry"))
    raise FileNotFoundError(f"no facility registry under {county_dir}/registry — generate the county first")
