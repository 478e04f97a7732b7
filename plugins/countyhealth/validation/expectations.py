"""Custom Great Expectations expectations for what GX has no expectation for.

Each is a real GX expectation class (a map-metric provider and the expectation that uses it), registered with
GX when this module is imported, and used from the suites in ``expectations/*.json`` by its snake_case name
like any built-in. The metrics' pandas implementations are the vectorised functions of :mod:`.row_checks`:

- ``expect_column_values_to_be_valid_resident_id`` — GB 11643: format, ISO 7064 MOD 11-2 check character,
  a real embedded birth date; the old 15-digit form passes;
- ``expect_column_values_to_not_be_legacy_resident_id`` — flags a valid 15-digit ID (accepted, but the
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

from typing import ClassVar, Union

from great_expectations.compatibility import pydantic
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

from countyhealth.validation import row_checks

_MULTI_DOMAIN = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
_TAGS: dict = {"tags": ["countyhealth"], "contributors": ["countyhealth"]}


def _cols(frame, n: int) -> list:
    """The first ``n`` columns of a multicolumn domain, in the order the suite's ``column_list`` names them."""
    return [frame[c] for c in frame.columns[:n]]


# ---- resident ID ------------------------------------------------------------------------------------------

class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return row_checks.resident_id_valid(column)


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Expect Chinese resident ID numbers (GB 11643-1999) to be well formed with a correct check character
    and a real embedded birth date. Lower-case x, spaces and full-width digits are tolerated (they are
    normalised); a well-formed 15-digit legacy number passes (see the next expectation)."""

    map_metric = "column_values.valid_resident_id"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = _TAGS


class ColumnValuesResidentIdNotLegacy(ColumnMapMetricProvider):
    condition_metric_name = "column_values.resident_id_not_legacy_15_digit"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return row_checks.resident_id_not_legacy(column)


class ExpectColumnValuesToNotBeLegacyResidentId(ColumnMapExpectation):
    """Expect resident ID numbers in the current 18-digit form: a valid old 15-digit number (issued before
    1999, no check character) is accepted everywhere but flagged, so the member can update the record."""

    map_metric = "column_values.resident_id_not_legacy_15_digit"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = _TAGS


class ResidentIdAgreesWithRecord(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.resident_id_agrees_with_record"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        return row_checks.resident_id_agrees(*_cols(column_list, 3))


class ExpectResidentIdToAgreeWithBirthDateAndSex(MulticolumnMapExpectation):
    """Expect a valid resident ID's embedded birth date and sex (odd sequence = male) to equal the recorded
    birth date and sex. Rows without a valid ID, birth date or sex are not judged. ``column_list`` is
    ``[id_number, birth_date, sex_code]``."""

    map_metric = "multicolumn_values.resident_id_agrees_with_record"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


# ---- presence rules ---------------------------------------------------------------------------------------

class BothPresentOrBothAbsent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.both_present_or_both_absent"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        return row_checks.both_present_or_absent(column_list)


class ExpectColumnsToBeBothPresentOrBothAbsent(MulticolumnMapExpectation):
    """Expect the columns to be filled together or left empty together (e.g. termination date and reason)."""

    map_metric = "multicolumn_values.both_present_or_both_absent"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


class AnyPresent(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.any_present"
    condition_domain_keys = _MULTI_DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        return row_checks.any_present(column_list)


class ExpectAnyOfColumnsToBePresent(MulticolumnMapExpectation):
    """Expect at least one of the columns to hold a value (e.g. a numeric or a text lab result)."""

    map_metric = "multicolumn_values.any_present"
    success_keys = ("mostly",)
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


# ---- lab items --------------------------------------------------------------------------------------------

class LabWithinLimits(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.lab_within_physiological_limits"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("code_system",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, code_system=None, **kwargs):
        return row_checks.lab_within_limits(*_cols(column_list, 3), code_system or None)


class ExpectLabValuesWithinPhysiologicalLimits(MulticolumnMapExpectation):
    """Expect quantitative lab values, converted to the county item's canonical unit, to lie within wide
    physiological limits (reference.lab_items: phys_low … phys_high). Unmapped items and units not allowed
    for the item are judged by other rules. ``column_list`` is ``[item_code_local, value_numeric, unit]``;
    ``code_system`` says which local code system the member uses."""

    code_system: Union[str, SuiteParameterDict, None] = None
    map_metric = "multicolumn_values.lab_within_physiological_limits"
    success_keys = ("code_system", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


class LabUnitAllowed(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.lab_unit_allowed"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("code_system",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, code_system=None, **kwargs):
        return row_checks.lab_unit_allowed(*_cols(column_list, 3), code_system or None)


class ExpectLabUnitsAllowedForItem(MulticolumnMapExpectation):
    """Expect the unit of a quantitative lab value to be one the county item allows (its canonical unit or a
    unit with a known conversion factor). ``column_list`` is ``[item_code_local, value_numeric, unit]``."""

    code_system: Union[str, SuiteParameterDict, None] = None
    map_metric = "multicolumn_values.lab_unit_allowed"
    success_keys = ("code_system", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


# ---- intervals --------------------------------------------------------------------------------------------

class NoOverlappingActive(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.no_overlapping_active_intervals"
    condition_domain_keys = _MULTI_DOMAIN
    condition_value_keys = ("inactive_values",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, inactive_values=(), **kwargs):
        return row_checks.no_overlapping_active(*_cols(column_list, 4), inactive_values=inactive_values)


class ExpectNoOverlappingActiveIntervalsPerKey(MulticolumnMapExpectation):
    """Expect, per key (e.g. a resident), no two active intervals (e.g. family-doctor contracts) to overlap.
    ``column_list`` is ``[key, begin, end, status]``; rows whose status is in ``inactive_values`` don't count.
    Judged within the rows validated together (one batch chunk)."""

    inactive_values: Union[list, SuiteParameterDict] = pydantic.Field(default_factory=list)
    map_metric = "multicolumn_values.no_overlapping_active_intervals"
    success_keys = ("inactive_values", "mostly")
    ignore_row_if: Union[str, SuiteParameterDict] = "never"
    library_metadata: ClassVar[dict] = _TAGS


CUSTOM = (ExpectColumnValuesToBeValidResidentId, ExpectColumnValuesToNotBeLegacyResidentId,
          ExpectResidentIdToAgreeWithBirthDateAndSex, ExpectColumnsToBeBothPresentOrBothAbsent,
          ExpectAnyOfColumnsToBePresent, ExpectLabValuesWithinPhysiologicalLimits, ExpectLabUnitsAllowedForItem,
          ExpectNoOverlappingActiveIntervalsPerKey)
