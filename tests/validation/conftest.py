"""Validation tests use their own small lab harmonisation map (the county's config/ may change under them)."""

from __future__ import annotations

import pytest

LAB_MAP = """code_system,local_code,local_name,item_code,loinc,notes
his_vendor_b,JY001,白细胞计数,HR-WBC,6690-2,
his_vendor_b,JY011,空腹血糖,HR-GLU,1558-6,reported in mg/dL
his_vendor_b,JY021,丙氨酸氨基转移酶,HR-ALT,1742-6,
his_vendor_b,JY041,钾,HR-K,2823-3,
his_vendor_b,JY091,乙型肝炎表面抗原,HR-HBSAG,5196-1,
his_vendor_b,JY999,本地自定义项目,,,kept unmapped on purpose
"""


@pytest.fixture(autouse=True)
def lab_item_map(tmp_path, monkeypatch):
    config = tmp_path / "config"
    (config / "harmonisation").mkdir(parents=True)
    (config / "harmonisation" / "lab_item_map.csv").write_text(LAB_MAP, encoding="utf-8")
    monkeypatch.setenv("COUNTYHEALTH_CONFIG_DIR", str(config))
    return config


import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # canonical_rows
