"""Custom Great Expectations expectations for what GX has no expectation for.

Each is a real GX expectation class (a metric provider with a vectorised pandas implementation, and the
expectation that uses it), registered with GX when this module is imported, and used from the suites in
``expectations/*.json`` by its snake_case name like any built-in:

- ``expect_column_values_to_be_valid_resident_id`` — GB 11643: format, ISO 7064 MOD 11-2 check character,
  a real embedded birth date; the old 15-digit form passes;
- ``expect_column_values_to_not_be_legacy15_digit_resident_id`` — flags a valid 15-digit ID (accepted, but the
  member should update it);
- ``expect_resident_id_to_agree_with_birth_date_and_sex`` — the ID's embedded birth date and sex parity
  against the recorded ones (used as a warning: lunar birthdays and typos in the birth-date field are common);
- ``expect_columns_to_be_both_present_or_both_absent`` — e.g. termination date and reason;
- ``expect_any_of_columns_to_be_present`` — e.g. a result has a numeric or a text value;
- ``expect_lab_values_within_physiological_limits`` and ``expect_lab_units_allowed_for_item`` — per county
  lab item, after mapping the member's local code (:mod:`countyhealth.standardise.lab`) and converting units;
  wide physiological limits, never reference ranges (a potassium of 7 is pathology, not bad data);
- ``expect_no_overlapping_active_intervals_per_key`` — one active family-doctor contract per resident.

Import this module only inside tasks: it imports great_expectations (~4 s).
"""

from __future__ import annotations

from typing import ClassVar, Optional, Union

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

from countyhealth import reference, resident_id
from countyhealth.standardise import lab

_MULTI_DOMAIN = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")


def _per_unique(series: pd.Series, fn) -> pd.Series:
    """Apply ``fn`` once per distinct value (IDs repeat across a patient's rows; codes repeat a lot)."""
    uniques = series.dropna().unique()
    table = {v: fn(v) for v in uniques}
    return series.map(table)


# ---- resident ID ------------------------------------------------------------------------------------------

class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _per_unique(column, lambda v: resident_id.parse(str(v)).valid).astype(bool)


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Expect Chinese resident ID numbers (GB 11643-1999) to be well formed with a correct check character
    and a real embedded birth date. Lower-case x, spaces and full-width digits are tolerated (they are
    normalised); a well-formed 15-digit legacy number passes (see the next expectation)."""

    map_metric = "column_values.valid_resident_id"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {"tags": ["countyhealth", "GB 11643"], "contributors": ["countyhealth"]}


class ColumnValuesResidentIdNotLegacy(ColumnMapMetricProvider):
    condition_metric_name = "column_values.resident_id_not_legacy_15_digit"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        def ok(v) -> bool:
            p = resident_id.parse(str(v))
            return not (p.valid and p.was_15)  # an invalid ID is the other rule's finding, not this one's

        return _per_unique(column, ok).astype(bool)


class ExpectColumnValuesToNotBeLegacy15DigitResidentId(ColumnMapExpectation):
    """Expect resident ID numbers in the current 18-digit form: a valid old 15-digit number (issued before
    1999, no check character) is accepted everywhere but flagged, so the member can update the record."""

    map_metric = "column_values.resident_id_not_legacy_15_digit"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {"tags": ["countyhealth", "GB 11643"], "contributors": ["countyhealth"]}


class ResidentIdAgreesWithRecord(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.resident_id_agrees_with_record"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        id_col, birth_col, sex_col = column_list.columns[:3]
        ids = column_list[id_col]
        parsed = {v: resident_id.parse(str(v)) for v in ids.dropna().unique()}
        valid_ids = {v: p for v, p in parsed.items() if p.valid}
        valid = ids.isin(list(valid_ids))
        id_birth = pd.to_datetime(ids.map({v: p.birth_date for v, p in valid_ids.items()}), errors="coerce")
        id_sex = ids.map({v: p.sex for v, p in valid_ids.items()})
        birth = pd.to_datetime(column_list[birth_col], errors="coerce")
        sex = column_list[sex_col].astype(object)
        birth_ok = birth.isna() | (birth == id_birth)
        sex_ok = ~sex.isin(["1", "2"]) | (sex == id_sex)  # 0/9 (unknown, unstated) say nothing to disagree with
        return (~valid | (birth_ok & sex_ok)).astype(bool)


class ExpectResidentIdToAgreeWithBirthDateAndSex(MulticolumnMapExpectation):
    """Expect a valid resident ID's embedded birth date and sex (odd sequence = male) to equal the recorded
    birth date and sex. Rows without a valid ID, birth date or sex are not judged. ``column_list`` is
    ``[id_number, birth_date, sex_code]``."""

    map_metric = "multicolumn_values.resident_id_agrees_with_record"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


# ---- presence rules ---------------------------------------------------------------------------------------

class BothPresentOrBothAbsent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.both_present_or_both_absent"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        present = column_list.notna()
        return present.all(axis=1) | (~present).all(axis=1)


class ExpectColumnsToBeBothPresentOrBothAbsent(MulticolumnMapExpectation):
    """Expect the columns to be filled together or left empty together (e.g. termination date and reason)."""

    map_metric = "multicolumn_values.both_present_or_both_absent"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


class AnyPresent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.any_present"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        return column_list.notna().any(axis=1)


class ExpectAnyOfColumnsToBePresent(MulticolumnMapExpectation):
    """Expect at least one of the columns to hold a value (e.g. a numeric or a text lab result)."""

    map_metric = "multicolumn_values.any_present"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


# ---- lab items --------------------------------------------------------------------------------------------

def lab_item(code_system: Optional[str], local_code) -> "reference.LabItem | None":
    """The county lab item a member's local code stands for (None when unmapped: the coverage report's job,
    not an error here). The one place validation asks; the map itself is :mod:`countyhealth.standardise.lab`."""
    return lab.item_for(code_system, local_code)


def _lab_judgement(column_list: pd.DataFrame, code_system: Optional[str]) -> pd.DataFrame:
    """Per row: is the item quantitative, the factor from the reported unit to the item's canonical unit
    (NaN: unit not allowed), the physiological limits and the numeric value. Item lookup and unit
    normalisation run once per distinct (local code, unit) pair — a county has a few hundred — and the rest
    is vectorised."""
    code_col, value_col, unit_col = column_list.columns[:3]
    keys = pd.DataFrame({"code": column_list[code_col].astype(object), "unit": column_list[unit_col].astype(object)},
                        index=column_list.index)
    pairs = keys.drop_duplicates()
    info = []
    for code, unit in zip(pairs["code"], pairs["unit"]):
        item = lab_item(code_system, code) if isinstance(code, str) else None
        if item is None or not item.quantitative:
            info.append((False, float("nan"), float("nan"), float("nan")))
            continue
        factor = item.unit_factors.get(lab.normalise_unit(unit) if isinstance(unit, str) else None)
        low = item.phys_low if item.phys_low is not None else float("-inf")
        high = item.phys_high if item.phys_high is not None else float("inf")
        info.append((True, float("nan") if factor is None else factor, low, high))
    table = pd.DataFrame(info, columns=["quantitative", "factor", "low", "high"])
    table["code"], table["unit"] = pairs["code"].to_numpy(), pairs["unit"].to_numpy()
    out = keys.merge(table, on=["code", "unit"], how="left")  # NaN keys match NaN keys in pandas merges
    out.index = column_list.index
    out["quantitative"] = out["quantitative"].fillna(False).astype(bool)
    out["value"] = pd.to_numeric(column_list[value_col], errors="coerce").astype(float)
    return out


class LabWithinLimits(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.lab_within_physiological_limits"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("code_system",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, code_system=None, **kwargs):
        j = _lab_judgement(column_list, code_system)
        canonical = j["value"] * j["factor"]
        judged = j["quantitative"] & canonical.notna()  # unknown item, no value or unit not allowed: other rules
        inside = (canonical >= j["low"]) & (canonical <= j["high"])
        return (~judged | inside).astype(bool)


class ExpectLabValuesWithinPhysiologicalLimits(MulticolumnMapExpectation):
    """Expect quantitative lab values, converted to the county item's canonical unit, to lie within wide
    physiological limits (reference.lab_items: phys_low … phys_high). Unmapped items and units not allowed
    for the item are judged by other rules. ``column_list`` is ``[item_code_local, value_numeric, unit]``;
    ``code_system`` says which local code system the member uses."""

    code_system: Union[str, SuiteParameterDict, None] = None
    map_metric = "multicolumn_values.lab_within_physiological_limits"
    success_keys = ("code_system", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


class LabUnitAllowed(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.lab_unit_allowed"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("code_system",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, code_system=None, **kwargs):
        j = _lab_judgement(column_list, code_system)
        return (~j["quantitative"] | j["value"].isna() | j["factor"].notna()).astype(bool)


class ExpectLabUnitsAllowedForItem(MulticolumnMapExpectation):
    """Expect the unit of a quantitative lab value to be one the county item allows (its canonical unit or a
    unit with a known conversion factor). ``column_list`` is ``[item_code_local, value_numeric, unit]``."""

    code_system: Union[str, SuiteParameterDict, None] = None
    map_metric = "multicolumn_values.lab_unit_allowed"
    success_keys = ("code_system", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


# ---- intervals --------------------------------------------------------------------------------------------

class NoOverlappingActive(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.no_overlapping_active_intervals"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("inactive_values",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, inactive_values=(), **kwargs):
        key_col, begin_col, end_col, status_col = column_list.columns[:4]
        df = pd.DataFrame({"key": column_list[key_col], "b": pd.to_datetime(column_list[begin_col], errors="coerce"),
                           "e": pd.to_datetime(column_list[end_col], errors="coerce"),
                           "s": column_list[status_col]}, index=column_list.index)
        active = df["key"].notna() & df["b"].notna() & df["e"].notna() & ~df["s"].isin(list(inactive_values))
        ok = pd.Series(True, index=df.index)
        sub = df[active]
        sub = sub[sub["key"].duplicated(keep=False)]  # only keys with two or more active intervals
        if sub.empty:
            return ok
        pairs = sub.reset_index().merge(sub.reset_index(), on="key", suffixes=("", "_other"))
        pairs = pairs[(pairs["index"] != pairs["index_other"]) & (pairs["b"] <= pairs["e_other"])
                      & (pairs["b_other"] <= pairs["e"])]
        ok[pairs["index"].unique()] = False  # every interval of an overlapping pair is suspect
        return ok


class ExpectNoOverlappingActiveIntervalsPerKey(MulticolumnMapExpectation):
    """Expect, per key (e.g. a resident), no two active intervals (e.g. family-doctor contracts) to overlap.
    ``column_list`` is ``[key, begin, end, status]``; rows whose status is in ``inactive_values`` don't count."""

    inactive_values: Union[list, SuiteParameterDict] = pydantic.Field(default_factory=list)
    map_metric = "multicolumn_values.no_overlapping_active_intervals"
    success_keys = ("inactive_values", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"


CUSTOM = (ExpectColumnValuesToBeValidResidentId, ExpectColumnValuesToNotBeLegacy15DigitResidentId,
          ExpectResidentIdToAgreeWithBirthDateAndSex,
          ExpectColumnsToBeBothPresentOrBothAbsent, ExpectAnyOfColumnsToBePresent,
          ExpectLabValuesWithinPhysiologicalLimits, ExpectLabUnitsAllowedForItem,
          ExpectNoOverlappingActiveIntervalsPerKey)
