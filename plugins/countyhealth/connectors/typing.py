"""Typed configuration of a source: what a ``sources/<source_id>.yaml`` may say.

Types only; :mod:`countyhealth.connectors.config` reads the YAML, resolves ``extends`` and ``${VAR}``,
validates it against these models and turns pydantic's errors into ones that name the file, the key and the
fix (as dlt keeps ``rest_api/typing.py`` apart from ``config_setup.py``). Models forbid unknown keys so a
typo fails at ``countyhealth sources check``, not silently at 2 a.m.

A source has a connector ``kind`` and named ``streams``; each stream says where its rows come from (kind
specific) and how they map onto one or more canonical datasets (:class:`DatasetMap`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: Any) -> Any:
    """Accept ``15m``, ``2h``, ``1d``, ``30s`` or a number of seconds besides ISO-8601 (pydantic's own)."""
    if isinstance(value, (int, float)):
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        n, unit = int(m.group(1)), m.group(2)
        return dt.timedelta(**{_UNITS[unit]: n})
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)


# ---- mapping ---------------------------------------------------------------------------------------

class FieldSpec(Model):
    """How one canonical field is filled. Exactly one of ``column``, ``value`` or ``template``.

    ``column`` names a source column (REST: a field of the record; nested fields as ``a.b``). The text is
    trimmed, ``null_values`` become null, ``transform`` steps run in order, ``map`` translates local codes to
    standard ones, and the result is parsed into the canonical field's type (dates and times with
    ``format``). A value that cannot be parsed or is missing from ``map`` quarantines the row with a
    conformance rule id naming the field.
    """

    column: str | None = None
    value: str | int | float | bool | None = None
    template: str | None = Field(None, description="e.g. '{ORG_CODE}-{RESULT_ID}': several columns joined")
    transform: list[str] = Field(default_factory=list)
    format: str | list[str] | None = Field(None, description="strptime format(s) for dates and times; "
                                                               "default ISO-8601")
    map: dict[str, str | None] | None = Field(None, description="local code -> standard code (值域映射)")
    unmapped: Literal["error", "keep", "null"] = Field(
        "error", description="a value missing from `map`: quarantine the row (error), keep it as is, or null")
    null_values: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `name: NAME` is short for `name: {column: NAME}`
        if isinstance(data, str):
            return {"column": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> "FieldSpec":
        given = [k for k in ("column", "template") if getattr(self, k) is not None]
        if "value" in self.model_fields_set:
            given.append("value")
        if len(given) != 1:
            raise ValueError("give exactly one of `column`, `value` or `template`"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def formats(self) -> list[str] | None:
        if self.format is None:
            return None
        return [self.format] if isinstance(self.format, str) else list(self.format)

    def columns_used(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return re.findall(r"\{([^{}]+)\}", self.template)
        return []


class DatasetMap(Model):
    """Rows of a stream mapped onto one canonical dataset (``countyhealth.model``)."""

    dataset: str
    fields: dict[str, FieldSpec]
    where: dict[str, list[str]] | None = Field(
        None, description="only rows whose column holds one of these values map to this dataset "
                          "(e.g. an export that mixes event types); other rows are not this dataset's")


class Cursor(Model):
    """The column that says when a row last changed (its ``updated_at``): extraction is incremental on it.

    Values are compared as times: ``format`` says how the source writes them (default ISO-8601). The
    watermark is stored in ISO-8601; each run reads from ``watermark - overlap`` (so rows written by a member
    whose clock runs behind are not missed; the idempotent upsert absorbs the re-read rows) up to the end of
    the run's data interval.
    """

    column: str
    format: str | None = None
    overlap: Duration = dt.timedelta(minutes=15)
    initial: dt.datetime | None = Field(None, description="where the first extraction starts (default: all)")


class StreamBase(Model):
    dataset: str | None = Field(None, description="shorthand for one map: the canonical dataset")
    fields: dict[str, FieldSpec] | None = Field(None, description="shorthand for one map: its fields")
    maps: list[DatasetMap] | None = Field(None, description="several canonical datasets from one stream")
    primary_key: list[str] | None = Field(None, description="source columns that identify a row; the "
                                                            "default source_record_id")
    cursor: Cursor | None = None
    batch_size: int = Field(50_000, ge=100, le=1_000_000, description="rows per record batch in memory")
    enabled: bool = True

    @field_validator("primary_key", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _maps(self) -> "StreamBase":
        if self.maps and (self.dataset or self.fields):
            raise ValueError("give either `dataset` + `fields` or `maps`, not both")
        if not self.maps:
            if not self.dataset or self.fields is None:
                raise ValueError("a stream needs `dataset` and `fields` (or a list of `maps`)")
            self.maps = [DatasetMap(dataset=self.dataset, fields=self.fields)]
            self.dataset = self.fields = None
        return self

    @property
    def datasets(self) -> list[str]:
        return [m.dataset for m in self.maps or []]


class ConnectionRef(Model):
    """Where credentials come from — never the YAML itself."""

    conn_id: str | None = Field(None, description="an Airflow connection id (AIRFLOW_CONN_<ID> env vars, "
                                                  "secrets backends and the metadata DB, the Airflow way)")
    url_env: str | None = Field(None, description="an environment variable holding a URL/URI")

    @model_validator(mode="after")
    def _one(self) -> "ConnectionRef":
        if (self.conn_id is None) == (self.url_env is None):
            raise ValueError("give exactly one of `conn_id` or `url_env`")
        return self


class ValidationSettings(Model):
    max_failing_share: float = Field(0.2, ge=0.0, le=1.0, description="above this share of quarantined rows "
                                                                      "a batch is held (circuit breaker)")
    min_rows: int = Field(50, ge=0, description="batches smaller than this are never held: one bad row in a "
                                                "three-row batch is noise, not an outage (it is still quarantined)")


class SourceBase(Model):
    """What every source YAML has, whatever its kind."""

    kind: str
    description: str | None = None
    facility_code: str | None = Field(None, description="the member this source belongs to (机构代码); fills "
                                                        "facility_code when a map doesn't")
    code_system: str | None = Field(None, description="the local lab/exam code system its item codes use "
                                                      "(config/harmonisation maps it)")
    extends: str | None = Field(None, description="a template YAML under sources/ (e.g. _vendors/x.yaml) "
                                                  "merged under this file")
    connection: ConnectionRef | None = None
    max_active_extracts: int = Field(1, ge=1, le=16, description="concurrent extractions against this member")
    pool: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,256}$",
                             description="an Airflow pool the extract tasks take a slot from, for a resource "
                                         "several members share (a vendor gateway, one VPN link); create it "
                                         "first: `airflow pools set NAME SLOTS DESCRIPTION`")
    validation: ValidationSettings = ValidationSettings()
    enabled: bool = True
    streams: dict[str, StreamBase]

    # set by the loader, not the YAML
    source_id: str = Field("", exclude=True)
    path: str | None = Field(None, exclude=True)


# ---- sql ---------------------------------------------------------------------------------------------

class SqlStream(StreamBase):
    table: str | None = None
    db_schema: str | None = Field(None, alias="schema")
    query: str | None = Field(None, description="a SELECT; the incremental predicate is added around it")

    @model_validator(mode="after")
    def _table_or_query(self) -> "SqlStream":
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        if self.query is not None and not re.match(r"(?is)^\s*(select|with)\b", self.query):
            raise ValueError("`query` must be a SELECT (or WITH ... SELECT)")
        return self


class SqlSource(SourceBase):
    kind: Literal["sql"]
    connection: ConnectionRef
    streams: dict[str, SqlStream]


# ---- rest --------------------------------------------------------------------------------------------

class BearerTokenAuth(Model):
    type: Literal["bearer_token"]
    token_path: str = Field(..., description="endpoint (relative to base_url) that exchanges a key for a token")
    body: dict[str, str] = Field(default_factory=lambda: {"app_key": "{login}", "app_secret": "{password}"},
                                 description="JSON body; {login} and {password} come from the connection")
    token_field: str = "access_token"
    expires_in_field: str | None = "expires_in"


class ApiKeyAuth(Model):
    type: Literal["api_key"]
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"


class BasicAuth(Model):
    type: Literal["basic"]


class NoAuth(Model):
    type: Literal["none"]


class PageNumberPaginator(Model):
    type: Literal["page_number"]
    page_param: str = "page"
    size_param: str = "page_size"
    size: int = Field(200, ge=1)
    first_page: int = 1
    total_field: str | None = Field(None, description="dotted path to the total count, when the API gives one")


class OffsetPaginator(Model):
    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(200, ge=1)
    total_field: str | None = None


class CursorPaginator(Model):
    type: Literal["cursor"]
    next_field: str = Field(..., description="dotted path to the next-page token in the response")
    cursor_param: str = "cursor"


class LinkHeaderPaginator(Model):
    type: Literal["link_header"]


class SinglePage(Model):
    type: Literal["single_page"]


Paginator = Annotated[PageNumberPaginator | OffsetPaginator | CursorPaginator | LinkHeaderPaginator | SinglePage,
                      Field(discriminator="type")]
Auth = Annotated[BearerTokenAuth | ApiKeyAuth | BasicAuth | NoAuth, Field(discriminator="type")]


class Retry(Model):
    attempts: int = Field(6, ge=1, le=20)
    backoff: float = Field(1.0, gt=0, description="first wait in seconds; doubles each attempt, with jitter")
    max_backoff: float = 60.0


class RestStream(StreamBase):
    path: str
    records_field: str = Field("data", description="dotted path to the list of records in a response")
    params: dict[str, str | int] = Field(default_factory=dict)
    since_param: str | None = Field(None, description="query parameter taking the incremental lower bound "
                                                      "(e.g. updated_since); needs `cursor`")
    until_param: str | None = None
    paginator: Paginator | None = None


class RestSource(SourceBase):
    kind: Literal["rest"]
    connection: ConnectionRef
    base_url: str | None = Field(None, description="default: scheme, host and port of the connection")
    auth: Auth = NoAuth(type="none")
    paginator: Paginator = SinglePage(type="single_page")
    timeout: float = Field(30.0, gt=0, description="seconds per request")
    retry: Retry = Retry()
    streams: dict[str, RestStream]


# ---- file --------------------------------------------------------------------------------------------

class FileStream(StreamBase):
    path: str = Field(..., description="the inbox directory (${VAR} allowed; relative paths are under the "
                                       "data directory)")
    pattern: str = Field("*", description="glob of files to ingest in the inbox")
    format: Literal["auto", "csv", "xlsx", "jsonl"] = Field(
        "auto", description="auto: by file extension (.csv/.txt, .xlsx, .jsonl/.json)")
    encoding: str = Field("auto", description="e.g. gb18030, utf-8; auto tries UTF-8 then GB18030")
    delimiter: str = ","
    sheet: str | None = Field(None, description="xlsx: the sheet (default the first)")
    archive: str | None = Field(None, description="where ingested files go (default: an `archive` folder next "
                                                  "to the inbox); files are moved, never deleted")


class FileSource(SourceBase):
    kind: Literal["file"]
    streams: dict[str, FileStream]
