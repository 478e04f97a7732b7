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

    column: str | None = Field(None, description="the source column (REST: a field of the record; nested "
                                                 "fields as `a.b`); `name: COL` is short for `name: {column: COL}`")
    value: str | int | float | bool | None = Field(None, description="a constant for every row (e.g. "
                                                                     "`result_status: {value: final}`)")
    template: str | None = Field(None, description="e.g. '{ORG_CODE}-{RESULT_ID}': several columns joined")
    transform: list[str] = Field(default_factory=list, description="text steps run in order before parsing: "
                                 "upper, lower, fullwidth_to_ascii, remove_spaces, digits, numeric_part, comparator, "
                                 "abnormal_arrow, date_part, ...")
    format: str | list[str] | None = Field(None, description="strptime format(s) for dates and times; "
                                                               "default ISO-8601")
    map: dict[str, str | None] | None = Field(None, description="local code -> standard code (值域映射)")
    unmapped: Literal["error", "keep", "null"] = Field(
        "error", description="a value missing from `map`: quarantine the row (error), keep it as is, or null")
    null_values: list[str] | None = Field(None, description="texts that mean absent (default: '', NULL, null, "
                                                            "None, NaN)")

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

    dataset: str = Field(..., description="the canonical dataset (`countyhealth sources fields DATASET` lists "
                                          "its fields)")
    fields: dict[str, FieldSpec] = Field(..., description="canonical field: source column, or a mapping "
                                                          "(column/value/template, format, transform, map, ...)")
    where: dict[str, list[str]] | None = Field(
        None, description="only rows whose column holds one of these values map to this dataset "
                          "(e.g. an export that mixes event types); other rows are not this dataset's")


class Lookback(Model):
    """Every ``every``, read from ``watermark - depth`` instead of ``watermark - overlap``: rows that reached the
    source with an update time more than the overlap behind the watermark (a member's clock days behind, a
    back-dated correction) are picked up within ``every`` if they are at most ``depth`` behind."""

    depth: Duration = Field(..., description="how far behind the watermark the deeper read starts (e.g. 7d)")
    every: Duration = Field(dt.timedelta(days=7), description="how often (the first run after this much time "
                                                              "since the last deeper read does one)")


class Cursor(Model):
    """The column that says when a row last changed (its ``updated_at``): extraction is incremental on it.

    Values are compared as times: ``format`` says how the source writes them (default ISO-8601). The
    watermark is stored in ISO-8601; each run reads from ``watermark - overlap`` (so rows written by a member
    whose clock runs behind are not missed; the idempotent upsert absorbs the re-read rows) up to the end of
    the run's data interval.
    """

    column: str = Field(..., description="the column (REST: the record field) holding the row's last-update "
                                         "time; every extracted row must carry it")
    format: str | None = Field(None, description="strptime format of its text (default ISO-8601, or a real "
                                                 "timestamp column)")
    overlap: Duration = Field(dt.timedelta(minutes=15), description="re-read this much before the watermark "
                                                                    "each run (member clocks running behind)")
    initial: dt.datetime | None = Field(None, description="where the first extraction starts (default: all)")
    ordered: bool = Field(False, description="REST: the API returns rows in ascending order of this column "
                                             "(with `since_param`), so a long extraction lands in parts and a "
                                             "failed one resumes after the last part; SQL is always ordered")
    lookback: Lookback | None = Field(None, description="a periodic deeper re-read for rows written far "
                                                          "behind the watermark (clock skew beyond the overlap)")


class StreamBase(Model):
    dataset: str | None = Field(None, description="shorthand for one map: the canonical dataset")
    fields: dict[str, FieldSpec] | None = Field(None, description="shorthand for one map: its fields")
    maps: list[DatasetMap] | None = Field(None, description="several canonical datasets from one stream")
    primary_key: list[str] | None = Field(None, description="source columns that identify a row; the "
                                                            "default source_record_id")
    cursor: Cursor | None = Field(None, description="incremental extraction on the rows' last-update column "
                                                    "(none: every run reads everything; files: each file once)")
    batch_size: int = Field(50_000, ge=100, le=1_000_000, description="rows per record batch in memory (and "
                                                                      "per resumable part)")
    enabled: bool = Field(True, description="false: the stream is not extracted")

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

    kind: str = Field(..., description="connector kind: sql, rest, file, hl7, or one a plug-in registers")
    description: str | None = Field(None, description="what the source is, for people (shown by `sources list`)")
    facility_code: str | None = Field(None, description="the member this source belongs to (机构代码); fills "
                                                        "facility_code when a map doesn't")
    code_system: str | None = Field(None, description="the local lab/exam code system its item codes use "
                                                      "(config/harmonisation maps it)")
    extends: str | None = Field(None, description="a template YAML under sources/ (e.g. _vendors/x.yaml) "
                                                  "merged under this file")
    connection: ConnectionRef | None = Field(None, description="where credentials come from (never the YAML)")
    max_active_extracts: int = Field(1, ge=1, le=16, description="concurrent extractions against this member")
    extract_budget_minutes: int = Field(40, ge=1, le=600, description="the night's cut-off for this member: its "
                                        "extracts must finish this many minutes after the night starts, or are "
                                        "stopped, recorded and caught up next night (the shared stages run on "
                                        "what arrived)")
    pool: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,256}$",
                             description="an Airflow pool the extract tasks take a slot from, for a resource "
                                         "several members share (a vendor gateway, one VPN link); create it "
                                         "first: `airflow pools set NAME SLOTS DESCRIPTION`")
    validation: ValidationSettings = Field(ValidationSettings(), description="the circuit breaker's settings")
    enabled: bool = Field(True, description="false: no stream of the source is extracted")
    streams: dict[str, StreamBase] = Field(..., description="named streams: where rows come from and how "
                                                            "they map")

    # set by the loader, not the YAML
    source_id: str = Field("", exclude=True)
    path: str | None = Field(None, exclude=True)


# ---- sql ---------------------------------------------------------------------------------------------

class Reconcile(Model):
    """Per-day reconciliation of a SQL stream against the warehouse: each night the source's keys and cursor
    values of the last ``days`` days are compared with what the warehouse holds (loaded or quarantined) for this
    source; a day with a row the warehouse lacks is read again and landed."""

    days: int = Field(7, ge=1, le=366, description="how many days back from the watermark are compared")


class SqlStream(StreamBase):
    table: str | None = Field(None, description="a table or view (checked by reflection, quoted by SQLAlchemy)")
    db_schema: str | None = Field(None, alias="schema", description="the table's schema (owner)")
    query: str | None = Field(None, description="a SELECT; the incremental predicate is added around it")
    reconcile: Reconcile | None = Field(None, description="per-day key reconciliation against the source "
                                                          "(finds and lands rows the cursor missed); needs `cursor`")

    @model_validator(mode="after")
    def _table_or_query(self) -> "SqlStream":
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        if self.query is not None and not re.match(r"(?is)^\s*(select|with)\b", self.query):
            raise ValueError("`query` must be a SELECT (or WITH ... SELECT)")
        return self


class SqlSource(SourceBase):
    kind: Literal["sql"]
    connection: ConnectionRef = Field(..., description="the member's database: an Airflow connection or a URL "
                                                       "variable")
    streams: dict[str, SqlStream] = Field(..., description="named streams (tables or queries)")


# ---- rest --------------------------------------------------------------------------------------------
# Key names follow dlt's rest_api and Airbyte's declarative framework where they have one (docs/connectors.md
# lists the correspondences), so an engineer who knows either reads a source YAML at once.

class BearerTokenAuth(Model):
    """A token exchanged for the app key/secret with a JSON body (the provincial platforms' own scheme)."""

    type: Literal["bearer_token"]
    token_path: str = Field(..., description="endpoint (relative to base_url) that exchanges a key for a token")
    body: dict[str, str] = Field(default_factory=lambda: {"app_key": "{login}", "app_secret": "{password}"},
                                 description="JSON body; {login} and {password} come from the connection")
    token_field: str = Field("access_token", description="dotted path to the token in the response")
    expires_in_field: str | None = Field("expires_in", description="dotted path to its lifetime in seconds "
                                                                   "(null: assume an hour)")


class OAuth2ClientCredentials(Model):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): the connection's login is the client id, its password the
    client secret. dlt calls this ``oauth2_client_credentials``, Airbyte ``OAuthAuthenticator``."""

    type: Literal["oauth2_client_credentials"]
    access_token_url: str = Field(..., description="the token endpoint, relative to base_url or absolute "
                                                   "(Airbyte: token_refresh_endpoint)")
    request_format: Literal["form", "json"] = Field(
        "form", description="how the token request body is sent: form (application/x-www-form-urlencoded, "
                            "the standard) or json")
    client_id_name: str = Field("client_id", description="the body field carrying the client id (e.g. appId)")
    client_secret_name: str = Field("client_secret", description="the body field carrying the client secret")
    access_token_request_data: dict[str, str] = Field(
        default_factory=lambda: {"grant_type": "client_credentials"},
        description="further fields of the token request (dlt's name; Airbyte: refresh_request_body)")
    access_token_name: str = Field("access_token", description="dotted path to the token in the response "
                                                               "(e.g. data.accessToken)")
    expires_in_name: str | None = Field("expires_in", description="dotted path to the token's lifetime in "
                                                                  "seconds; it is renewed before it runs out")
    default_token_expiration: Duration = Field(dt.timedelta(hours=1), description="lifetime assumed when the "
                                                                                  "response gives none")
    token_param: str | None = Field(None, description="send the token as this query parameter (e.g. "
                                                      "access_token) instead of an Authorization: Bearer header")


class ApiKeyAuth(Model):
    """The connection's password (or extra ``api_key``) sent as a header or query parameter."""

    type: Literal["api_key"]
    name: str = Field("X-API-Key", description="header or query parameter name")
    location: Literal["header", "query"] = Field("header", description="where the key goes")


class BasicAuth(Model):
    """HTTP basic with the connection's login and password."""

    type: Literal["basic"]


class NoAuth(Model):
    """No credentials."""

    type: Literal["none"]


class PaginatorBase(Model):
    params: dict[str, str | int] = Field(default_factory=dict, description="static query parameters sent with "
                                                                           "every page (e.g. {orgCode: '350125'})")


class PageNumberPaginator(PaginatorBase):
    """``page=1, 2, ...``; stops on a short page or when ``total_field`` rows have been read."""

    type: Literal["page_number"]
    page_param: str = Field("page", description="query parameter of the page number")
    size_param: str = Field("page_size", description="query parameter of the page size")
    size: int = Field(200, ge=1, description="rows per page asked for")
    first_page: int = Field(1, description="number of the first page (dlt: base_page)")
    total_field: str | None = Field(None, description="dotted path to the total count, when the API gives one "
                                                      "(dlt: total_path)")


class OffsetPaginator(PaginatorBase):
    """``offset=0, limit, 2*limit, ...``; stops on a short page or at ``total_field``."""

    type: Literal["offset"]
    offset_param: str = Field("offset", description="query parameter of the offset")
    limit_param: str = Field("limit", description="query parameter of the page size")
    limit: int = Field(200, ge=1, description="rows per page asked for")
    total_field: str | None = Field(None, description="dotted path to the total count (dlt: total_path)")


class CursorPaginator(PaginatorBase):
    """A next-page token in the body (dlt: ``cursor``, Airbyte: ``CursorPagination``): paging stops when the
    token is absent or empty, when ``has_more_field`` is false, or when ``total_field`` rows have been read."""

    type: Literal["cursor"]
    next_field: str = Field(..., description="dotted path to the next-page token in the response (dlt: "
                                             "cursor_path; Airbyte: cursor_value)")
    cursor_param: str = Field("cursor", description="query parameter that carries the token back")
    size_param: str | None = Field(None, description="query parameter of the page size, when the API takes one")
    size: int | None = Field(None, ge=1, description="rows per page asked for (with size_param)")
    total_field: str | None = Field(None, description="dotted path to the total count, when the API gives one")
    has_more_field: str | None = Field(None, description="dotted path to a has-more flag (e.g. data.hasNext); "
                                                         "Airbyte's stop_condition")


class LinkHeaderPaginator(PaginatorBase):
    """The ``Link: <...>; rel="next"`` header (dlt: header_link)."""

    type: Literal["link_header"]


class SinglePage(PaginatorBase):
    """One request returns everything."""

    type: Literal["single_page"]


Paginator = Annotated[PageNumberPaginator | OffsetPaginator | CursorPaginator | LinkHeaderPaginator | SinglePage,
                      Field(discriminator="type")]
Auth = Annotated[BearerTokenAuth | OAuth2ClientCredentials | ApiKeyAuth | BasicAuth | NoAuth,
                 Field(discriminator="type")]


class Retry(Model):
    """How 5xx answers, timeouts, dropped connections, truncated bodies and in-body retry codes are retried."""

    attempts: int = Field(6, ge=1, le=20, description="tries per request before the extraction fails")
    backoff: float = Field(1.0, gt=0, description="first wait in seconds; doubles each attempt, with jitter")
    max_backoff: float = Field(60.0, gt=0, description="longest wait between two tries, seconds")


class RateLimit(Model):
    """The client's own pace, so a platform's quota is not hit in the first place; 429s still wait."""

    requests_per_second: float | None = Field(None, gt=0, description="at most this many requests a second "
                                                                      "(token requests included)")
    max_consecutive_throttled: int = Field(20, ge=1, le=1000, description="give up after this many 429s (or "
                                           "in-body rate_limited codes) in a row; a success resets the count")


class ResponseFilter(Model):
    """What an answer means when it matches (Airbyte: ``HttpResponseFilter``; dlt: ``response_actions``): a value
    of the in-body status field, an HTTP status, or a message fragment. The first filter that matches decides."""

    values: list[str] = Field(default_factory=list, description="values of `status_field` this filter matches")
    http_codes: list[int] = Field(default_factory=list, description="HTTP statuses this filter matches")
    error_message_contains: str | None = Field(None, description="match when the platform's message contains "
                                                                 "this text (e.g. 系统繁忙)")
    action: Literal["success", "retry", "fail", "rate_limited", "refresh_token_then_retry"] = Field(
        ..., description="success: read the page; retry: back off as for a 5xx; fail: stop, showing the message; "
                         "rate_limited: wait as for a 429; refresh_token_then_retry: get a new token, once")
    error_message: str | None = Field(None, description="what to tell the county IT team when this filter fails "
                                                        "the extraction (the fix)")

    @model_validator(mode="after")
    def _matches_something(self) -> "ResponseFilter":
        if not (self.values or self.http_codes or self.error_message_contains):
            raise ValueError("a response filter needs `values`, `http_codes` or `error_message_contains`")
        return self


class ErrorHandler(Model):
    """Errors inside HTTP 200, as many Chinese health-IT platforms answer: ``{"code": "50001", "msg": "系统繁忙",
    "data": null}``. A page is read only when its status value is a success value; a null records field under a
    retry code is retried, never read as "no rows". There is no ``ignore``: an ignored page is rows lost."""

    status_field: str = Field(..., description="dotted path to the platform's status code in every answer "
                                               "(e.g. code, resultCode, data.status)")
    message_field: str | None = Field(None, description="dotted path to its message (e.g. msg); shown in errors, "
                                                        "ID numbers and phones masked")
    success_values: list[str] = Field(default_factory=lambda: ["0"], description="status values that mean "
                                                                                 "success")
    response_filters: list[ResponseFilter] = Field(default_factory=list, description="what other answers mean "
                                                   "(tried in order; an unmatched non-success value fails)")


class RestStream(StreamBase):
    path: str = Field(..., description="the endpoint, relative to base_url")
    records_field: str = Field("data", description="dotted path to the list of records in a response")
    params: dict[str, str | int] = Field(default_factory=dict, description="static query parameters of this "
                                                                           "stream")
    since_param: str | None = Field(None, description="query parameter taking the incremental lower bound "
                                                      "(e.g. updated_since); needs `cursor`")
    until_param: str | None = Field(None, description="query parameter taking the upper bound (the end of the "
                                                      "run's data interval); without it later rows are left for "
                                                      "the next run")
    paginator: Paginator | None = Field(None, description="this stream's paginator (default the source's)")


class RestSource(SourceBase):
    kind: Literal["rest"]
    connection: ConnectionRef = Field(..., description="the API's connection: host and port (or base_url), "
                                                       "login and password")
    base_url: str | None = Field(None, description="default: scheme, host and port of the connection")
    auth: Auth = Field(NoAuth(type="none"), description="how requests are authorised")
    paginator: Paginator = Field(SinglePage(type="single_page"), description="how pages are walked")
    timeout: float = Field(30.0, gt=0, description="seconds per request")
    retry: Retry = Field(Retry(), description="retries of transient failures")
    rate_limit: RateLimit = Field(RateLimit(), description="the client's request rate and 429 tolerance")
    error_handler: ErrorHandler | None = Field(None, description="errors inside HTTP 200 (a status field in "
                                                                 "the body)")
    streams: dict[str, RestStream] = Field(..., description="named streams (endpoints)")

    @model_validator(mode="after")
    def _incremental_needs_cursor(self) -> "RestSource":
        for name, stream in self.streams.items():
            if stream.since_param and stream.cursor is None:
                raise ValueError(f"stream {name!r} has `since_param` but no `cursor` — add `cursor: {{column: "
                                 "<the records' update-time field>}`")
        return self


# ---- file --------------------------------------------------------------------------------------------

class FileStream(StreamBase):
    path: str = Field(..., description="the inbox directory (${VAR} allowed; relative paths are under the "
                                       "data directory)")
    pattern: str = Field("*", description="glob of files to ingest in the inbox")
    format: Literal["auto", "csv", "xlsx", "jsonl"] = Field(
        "auto", description="auto: by file extension (.csv/.txt, .xlsx, .jsonl/.json)")
    encoding: str = Field("auto", description="e.g. gb18030, utf-8; auto tries UTF-8 then GB18030")
    delimiter: str = Field(",", description="csv: the field separator")
    sheet: str | None = Field(None, description="xlsx: the sheet (default the first)")
    archive: str | None = Field(None, description="where ingested files go (default: an `archive` folder next "
                                                  "to the inbox); files are moved, never deleted")
    rejected: str | None = Field(None, description="where an unreadable file goes, with a .reason.txt beside it "
                                                   "(default: a `rejected` folder next to the inbox); the other "
                                                   "files still load")


class FileSource(SourceBase):
    kind: Literal["file"]
    streams: dict[str, FileStream] = Field(..., description="named streams (inboxes)")
