"""``kind: rest`` — an HTTP/JSON API such as the provincial public-health platform (基本公共卫生) or a vendor's
platform (a regional lab centre's LIS, a contract-signing platform).

Built on ``requests`` (a ``Session`` per extraction, connection reuse). What county APIs need, declared in the
YAML (key names as dlt's rest_api and Airbyte's declarative framework call them, see docs/connectors.md):

- auth: OAuth 2.0 client credentials (the token request as a form or as JSON, renewed before ``expires_in``
  runs out), a bearer token exchanged for an app key/secret, an API key, HTTP basic, or none — credentials from
  the connection, never the YAML. A token endpoint that refuses us is asked once more with the other body
  encoding, so the error says whether it refused the encoding or the credentials;
- errors inside HTTP 200 (``error_handler``): the platform's status field, which values mean success, retry,
  rate-limited, token-expired or fail, and its message shown (masked) in the error. Only a success value lets
  a page be read, so a null records field under "system busy" is retried, never taken for "no rows";
- pagination: page number, offset, a cursor token in the body (with an optional total and has-more flag), or
  the ``Link`` header; each takes extra static ``params``. With a total, a page shorter than asked for (a
  platform capping the page size) does not end the extraction early;
- rate: a client-side request rate; a 429 waits as long as ``Retry-After`` says (or backs off as for a 5xx
  when it doesn't), and only so many 429s in a row are tolerated;
- incremental: the watermark (minus the overlap) as an ``updated_since``-style parameter; the end of the
  data interval as an ``until`` parameter or, when the API has none, by not landing rows past it;
- failures: a timeout on every request; 5xx, timeouts, dropped connections, truncated bodies and in-body retry
  codes are retried with exponential backoff and full jitter; 401/403 fail at once naming what to check.
  Pages are yielded as they arrive (bounded memory).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import logging
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pyarrow as pa
import requests

from countyhealth import privacy
from countyhealth.connectors.base import (
    Connector,
    Extraction,
    ExtractError,
    ExtractWindow,
    format_cursor,
    parse_cursor,
    raw_batch_from_records,
)
from countyhealth.connectors.typing import (
    ApiKeyAuth,
    BasicAuth,
    BearerTokenAuth,
    CursorPaginator,
    LinkHeaderPaginator,
    OAuth2ClientCredentials,
    OffsetPaginator,
    PageNumberPaginator,
    ResponseFilter,
    RestSource,
    RestStream,
)

log = logging.getLogger(__name__)
_TOKEN_AUTHS = (BearerTokenAuth, OAuth2ClientCredentials)


def dig(data: Any, path: str | None) -> Any:
    """Follow a dotted path (``data.records``) into parsed JSON; None when absent."""
    if not path:
        return data
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class _Transient(Exception):
    """Worth retrying: 5xx, timeouts, broken connections, bodies that end early, in-body retry codes."""


class _Throttled(Exception):
    """429, or an in-body rate-limited code: wait (Retry-After, else the backoff) and ask again."""

    def __init__(self, retry_after: str | None = None):
        super().__init__("rate limited")
        self.retry_after = retry_after


class _RefreshToken(Exception):
    """The platform says the token is no longer good: get a new one and ask again (once)."""


class RestConnector(Connector):
    kind = "rest"
    config_model = RestSource

    def __init__(self, source: RestSource, connection=None):
        super().__init__(source, connection)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "countyhealth-connector/1"
        self._token: str | None = None
        self._token_expires = 0.0
        self._next_slot = 0.0  # monotonic time before which the rate limit allows no request
        self._throttled_in_row = 0
        self.requests_made = 0
        self.retries = 0
        self.throttled = 0
        self.tokens_fetched = 0

    # ---- plumbing ------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        base = self.source.base_url or self.connection.base_url()
        return base.rstrip("/") + "/"

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base_url, path.lstrip("/"))

    def _where(self, path: str) -> str:
        return f"{self.source.path} ({path})"

    @property
    def _conn_name(self) -> str:
        return repr(self.source.connection.conn_id or self.source.connection.url_env)

    def _authorise(self, headers: dict, params: dict) -> None:
        auth = self.source.auth
        conn = self.connection
        if isinstance(auth, _TOKEN_AUTHS):
            if self._token is None or time.monotonic() > self._token_expires:
                self._fetch_token()
            if isinstance(auth, OAuth2ClientCredentials) and auth.token_param:
                params[auth.token_param] = self._token
            else:
                headers["Authorization"] = f"Bearer {self._token}"
        elif isinstance(auth, ApiKeyAuth):
            key = conn.password or conn.extra.get("api_key")
            (headers if auth.location == "header" else params)[auth.name] = key
        elif isinstance(auth, BasicAuth):
            pair = f"{conn.login or ''}:{conn.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    # ---- tokens --------------------------------------------------------------------------------------
    def _fetch_token(self) -> None:
        auth = self.source.auth
        conn = self.connection
        if isinstance(auth, BearerTokenAuth):
            body = {k: v.format(login=conn.login or "", password=conn.password or "") for k, v in auth.body.items()}
            try:
                data = self._send("POST", auth.token_path, json_body=body, authorise=False, token_request=True)
            except _TokenRefused as refused:
                raise ExtractError(f"{self._where(auth.token_path)}: the API refused our credentials "
                                   f"({refused.code}){refused.said} — check the key/secret of connection "
                                   f"{self._conn_name}") from None
            token_path, ttl_path, default_ttl = auth.token_field, auth.expires_in_field, 3600.0
            where = auth.token_path
        else:
            data = self._oauth2_token(auth)
            token_path, ttl_path = auth.access_token_name, auth.expires_in_name
            default_ttl, where = auth.default_token_expiration.total_seconds(), auth.access_token_url
        token = dig(data, token_path)
        if not token:
            key = "auth.token_field" if isinstance(auth, BearerTokenAuth) else "auth.access_token_name"
            raise ExtractError(f"{self._where(where)}: the token response has no {token_path!r} — check `{key}` "
                               f"(a dotted path into: {', '.join(_paths(data))[:200]})")
        self._token = str(token)
        ttl = dig(data, ttl_path) if ttl_path else None
        try:
            ttl = float(ttl) if ttl not in (None, "") else default_ttl
        except (TypeError, ValueError):
            ttl = default_ttl
        # renew a little before the platform's own clock says it expired (10 %, at most 30 s)
        self._token_expires = time.monotonic() + ttl - min(30.0, 0.1 * ttl)
        self.tokens_fetched += 1

    def _oauth2_token(self, auth: OAuth2ClientCredentials) -> Any:
        conn = self.connection
        body = {auth.client_id_name: conn.login or "", auth.client_secret_name: conn.password or "",
                **auth.access_token_request_data}
        try:
            return self._send("POST", auth.access_token_url, authorise=False, token_request=True,
                              **{_BODY[auth.request_format]: body})
        except _TokenRefused as refused:
            other = "json" if auth.request_format == "form" else "form"
            try:  # ask once more with the other encoding: tells a refused encoding from refused credentials
                self._send("POST", auth.access_token_url, authorise=False, token_request=True,
                           **{_BODY[other]: body})
            except (_TokenRefused, ExtractError):
                raise ExtractError(
                    f"{self._where(auth.access_token_url)}: the token endpoint refused our credentials "
                    f"({refused.detail}) — check the client id (login) and secret (password) of connection "
                    f"{self._conn_name}; the endpoint refused a {auth.request_format} body and a {other} body "
                    "alike, so it is not the encoding") from None
            raise ExtractError(
                f"{self._where(auth.access_token_url)}: the token endpoint refused the token request sent as "
                f"{_ENCODING_NAME[auth.request_format]} ({refused.detail}) but accepts it as "
                f"{_ENCODING_NAME[other]} — set `auth.request_format: {other}`") from None

    # ---- one request ---------------------------------------------------------------------------------
    def _pace(self) -> None:
        rps = self.source.rate_limit.requests_per_second
        if not rps:
            return
        now = time.monotonic()
        if self._next_slot > now:
            time.sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + 1.0 / rps

    def _backoff(self, attempt: int) -> float:
        r = self.source.retry
        return random.uniform(0, min(r.max_backoff, r.backoff * 2 ** attempt))  # full jitter

    def _send(self, method: str, path: str, *, params: dict | None = None, json_body: dict | None = None,
              form_body: dict | None = None, authorise: bool = True, token_request: bool = False) -> Any:
        """One logical request with retries; returns the parsed JSON of an answer that means success."""
        url = self._url(path)
        attempt = 0
        refreshed = False
        while True:
            headers: dict = {"Accept": "application/json"}
            query = dict(params or {})
            if authorise:
                self._authorise(headers, query)
            self._pace()
            try:
                self.requests_made += 1
                resp = self.session.request(method, url, params=query, json=json_body, data=form_body,
                                            headers=headers, timeout=self.source.timeout)
                data = self._judge(resp, path, authorise=authorise, token_request=token_request)
                self._throttled_in_row = 0
                self._last_response = resp
                return data
            except _Throttled as exc:
                self.throttled += 1
                self._throttled_in_row += 1
                cap = self.source.rate_limit.max_consecutive_throttled
                if self._throttled_in_row > cap:
                    raise ExtractError(f"{self._where(path)}: the API answered 'too many requests' {cap + 1} times "
                                       "in a row — lower `rate_limit.requests_per_second` or ask the platform to "
                                       "raise our quota") from None
                pause = (_retry_after(exc.retry_after) if exc.retry_after
                         else self._backoff(self._throttled_in_row))
                log.info("%s: rate limited; waiting %.1fs", self._where(path), pause)
                time.sleep(pause)
            except _RefreshToken as exc:
                self._throttled_in_row = 0
                if refreshed or not authorise:
                    raise ExtractError(f"{self._where(path)}: the API refused a token it had just issued ({exc}) — "
                                       f"check the permissions of connection {self._conn_name}") from None
                refreshed = True  # the token may have expired early: get a new one, once
                self._token = None
            except (_Transient, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                self._throttled_in_row = 0
                attempt += 1
                if attempt >= self.source.retry.attempts:
                    raise ExtractError(f"{self._where(path)}: gave up after {attempt} attempts "
                                       f"({type(exc).__name__.strip('_')}: {privacy.scrub(str(exc))[:200]}) — the platform is "
                                       "down or too slow; the stream catches up on the next run") from None
                self.retries += 1
                pause = self._backoff(attempt)
                log.warning("%s: %s (%s); retry %d in %.1fs", self._where(path), type(exc).__name__.strip("_"),
                            privacy.scrub(str(exc))[:200], attempt, pause)
                time.sleep(pause)

    def _judge(self, resp: requests.Response, path: str, *, authorise: bool, token_request: bool) -> Any:
        """What an answer means: its parsed JSON when it is a success, else the exception saying what to do."""
        handler = self.source.error_handler
        body: Any = None
        if resp.headers.get("Content-Type", "").startswith("application/json") or resp.status_code < 300:
            try:
                body = resp.json()
            except (ValueError, requests.exceptions.JSONDecodeError):
                if resp.status_code < 300:
                    raise _Transient("response body is not complete JSON") from None
        message = self._message(body) if body is not None else None
        status = dig(body, handler.status_field) if handler and isinstance(body, dict) else None
        rule = self._filter(resp.status_code, status, message)
        if rule is not None:
            return self._act(rule, resp, path, body, status, message, token_request=token_request)
        code = resp.status_code
        if code == 429:
            raise _Throttled(resp.headers.get("Retry-After"))
        if token_request and code in (400, 401, 403, 415):
            raise _TokenRefused(code, message)
        if code == 401 and authorise and isinstance(self.source.auth, _TOKEN_AUTHS):
            raise _RefreshToken("HTTP 401" + (f": {message}" if message else ""))
        if code in (401, 403):
            what = "refused our credentials (401)" if code == 401 else "forbade the request (403)"
            raise ExtractError(f"{self._where(path)}: the API {what}" + (f": {message}" if message else "")
                               + f" — check the key/secret or account of connection {self._conn_name} and its "
                               "permissions")
        if code >= 500:
            raise _Transient(f"HTTP {code}")
        if code >= 400:
            raise ExtractError(f"{self._where(path)}: HTTP {code}: "
                               f"{message or privacy.scrub(resp.text[:200])} — check the stream's path and params")
        if handler is None:
            return body
        if status is None:
            if token_request:
                return body  # a standard OAuth token answer carries no platform status: judged by its token
            raise ExtractError(f"{self._where(path)}: the answer has no status field {handler.status_field!r} — "
                               "check `error_handler.status_field` (a dotted path into: "
                               f"{', '.join(_paths(body))[:200]})")
        if str(status) in handler.success_values:
            return body
        if token_request:
            raise _TokenRefused(f"{handler.status_field}={status}", message)
        raise ExtractError(f"{self._where(path)}: the platform answered {handler.status_field}={status}"
                           + (f": {message}" if message else "") + " — a value `error_handler` does not list; if "
                           "it means 'try again', add it to a response filter with `action: retry`")

    def _message(self, body: Any) -> str | None:
        handler = self.source.error_handler
        path = handler.message_field if handler and handler.message_field else None
        value = dig(body, path) if path else (dig(body, "msg") or dig(body, "message") or dig(body, "error")
                                             if isinstance(body, dict) else None)
        return privacy.scrub(str(value))[:200] if value not in (None, "") else None

    def _filter(self, http_code: int, status: Any, message: str | None) -> ResponseFilter | None:
        handler = self.source.error_handler
        if handler is None:
            return None
        for f in handler.response_filters:
            if (http_code in f.http_codes or (status is not None and str(status) in f.values)
                    or (f.error_message_contains and message and f.error_message_contains in message)):
                return f
        return None

    def _act(self, rule: ResponseFilter, resp, path, body, status, message, *, token_request: bool) -> Any:
        said = (f"HTTP {resp.status_code}" + (f", {self.source.error_handler.status_field}={status}"
                                              if status is not None else "") + (f": {message}" if message else ""))
        if rule.action == "success":
            return body
        if rule.action == "retry":
            raise _Transient(said)
        if rule.action == "rate_limited":
            raise _Throttled(resp.headers.get("Retry-After"))
        if rule.action == "refresh_token_then_retry" and not token_request:
            raise _RefreshToken(said)
        if token_request:
            raise _TokenRefused(resp.status_code if status is None else f"{self.source.error_handler.status_field}="
                                f"{status}", message)
        fix = rule.error_message or "see the platform's message"
        raise ExtractError(f"{self._where(path)}: the platform refused the request ({said}) — {fix}")

    # ---- the connector API ---------------------------------------------------------------------------
    def check(self) -> None:
        if isinstance(self.source.auth, _TOKEN_AUTHS):
            self._fetch_token()

    def count(self, stream_name: str, window: ExtractWindow = ExtractWindow()) -> int | None:
        stream: RestStream = self.stream(stream_name)
        paginator = stream.paginator or self.source.paginator
        total_field = getattr(paginator, "total_field", None)
        if not total_field:
            return None
        params = self._params(stream, window)
        if isinstance(paginator, PageNumberPaginator):
            params.update({paginator.page_param: paginator.first_page, paginator.size_param: 1})
        elif isinstance(paginator, OffsetPaginator):
            params.update({paginator.offset_param: 0, paginator.limit_param: 1})
        elif isinstance(paginator, CursorPaginator) and paginator.size_param:
            params[paginator.size_param] = 1
        total = dig(self._send("GET", stream.path, params=params), total_field)
        return int(total) if total is not None else None

    def _params(self, stream: RestStream, window: ExtractWindow) -> dict:
        paginator = stream.paginator or self.source.paginator
        params: dict = {**paginator.params, **stream.params}
        if stream.cursor and stream.since_param and window.since:
            params[stream.since_param] = format_cursor(window.since, stream.cursor)
        if stream.cursor and stream.until_param and window.until:
            params[stream.until_param] = format_cursor(window.until, stream.cursor)
        return params

    def extract(self, stream_name: str, window: ExtractWindow) -> Extraction:
        stream: RestStream = self.stream(stream_name)
        extra: dict = {}
        return Extraction(self._batches(stream, window, extra), extra=extra)

    def resumable(self, stream_name: str) -> bool:
        stream: RestStream = self.stream(stream_name)
        return bool(stream.cursor and stream.cursor.ordered and stream.since_param)

    def _pages(self, stream: RestStream, window: ExtractWindow, extra: dict) -> Iterator[list]:
        paginator = stream.paginator or self.source.paginator
        params = self._params(stream, window)
        total_field = getattr(paginator, "total_field", None)
        if isinstance(paginator, (PageNumberPaginator, OffsetPaginator)):
            numbered = isinstance(paginator, PageNumberPaginator)
            page, offset, seen = (paginator.first_page if numbered else 0), 0, 0
            size = paginator.size if numbered else paginator.limit
            while True:
                where = ({paginator.page_param: page, paginator.size_param: size} if numbered
                         else {paginator.offset_param: offset, paginator.limit_param: size})
                data = self._send("GET", stream.path, params={**params, **where})
                records = self._records(stream, data)
                yield records
                seen += len(records)
                offset += len(records)
                page += 1
                total = _total(data, total_field)
                if total is not None:
                    extra["reported_total"] = total
                    # with a total, only the total ends paging: a platform that caps the page size below what
                    # we asked for answers short pages that are not the last
                    if seen >= total or not records:
                        return
                elif len(records) < size:
                    return
        elif isinstance(paginator, CursorPaginator):
            token, seen, first_total = None, 0, None
            while True:
                query = {**params, **({paginator.size_param: paginator.size} if paginator.size_param else {}),
                         **({paginator.cursor_param: token} if token else {})}
                data = self._send("GET", stream.path, params=query)
                records = self._records(stream, data)
                yield records
                seen += len(records)
                total = _total(data, total_field)
                if total is not None:
                    first_total = total if first_total is None else first_total
                    extra["reported_total"] = total
                token = dig(data, paginator.next_field)
                more = dig(data, paginator.has_more_field) if paginator.has_more_field else None
                if (not token or more is False or str(more).lower() in ("false", "0")
                        or (total is not None and seen >= total)):
                    if first_total is not None and seen < first_total:
                        extra["short_of_reported_total"] = first_total - seen
                        log.warning("%s: the API said %d rows but paging ended after %d", self._where(stream.path),
                                    first_total, seen)
                    return
        elif isinstance(paginator, LinkHeaderPaginator):
            path: str | None = stream.path
            query: dict | None = params
            while path:
                data = self._send("GET", path, params=query)
                yield self._records(stream, data)
                path = self._last_response.links.get("next", {}).get("url")
                query = None  # the next link carries its own query
        else:
            yield self._records(stream, self._send("GET", stream.path, params=params))

    def _records(self, stream: RestStream, data: Any) -> list:
        records = dig(data, stream.records_field)
        if records is None:
            raise ExtractError(f"{self._where(stream.path)}: no {stream.records_field!r} in the response — check "
                               "`records_field` (a dotted path to the list of records)")
        if not isinstance(records, list):
            raise ExtractError(f"{self._where(stream.path)}: {stream.records_field!r} is not a list")
        return records

    def _batches(self, stream: RestStream, window: ExtractWindow, extra: dict) -> Iterator[pa.RecordBatch]:
        buffer: list = []
        dropped = 0
        late_filter = stream.cursor is not None and window.until is not None and not stream.until_param
        try:
            for records in self._pages(stream, window, extra):
                if late_filter:  # the API can't bound the window: leave later rows for the next interval
                    kept = [r for r in records if not _at_or_after(dig(r, stream.cursor.column), stream, window.until)]
                    dropped += len(records) - len(kept)
                    records = kept
                buffer.extend(records)
                while len(buffer) >= stream.batch_size:
                    yield raw_batch_from_records(buffer[: stream.batch_size])
                    buffer = buffer[stream.batch_size:]
            if buffer:
                yield raw_batch_from_records(buffer)
        finally:
            extra.update(requests=self.requests_made, retries=self.retries, throttled=self.throttled,
                         tokens=self.tokens_fetched, rows_after_window=dropped)


class _TokenRefused(Exception):
    """The token endpoint said no (400/401/403/415): the caller works out whether to the encoding or to us."""

    def __init__(self, code, message: str | None):
        super().__init__(f"{code}: {message}")
        self.code, self.said = code, (f": {message}" if message else "")
        self.detail = (f"HTTP {code}" if isinstance(code, int) else str(code)) + self.said


_BODY = {"form": "form_body", "json": "json_body"}
_ENCODING_NAME = {"form": "a form (application/x-www-form-urlencoded)", "json": "JSON (application/json)"}


def _total(data: Any, total_field: str | None) -> int | None:
    if not total_field:
        return None
    value = dig(data, total_field)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _paths(data: Any, prefix: str = "", depth: int = 2) -> list[str]:
    """The dotted paths a JSON answer offers (for error messages naming what the YAML could point at)."""
    if not isinstance(data, dict) or depth == 0:
        return [prefix] if prefix else []
    out = []
    for k, v in data.items():
        p = f"{prefix}.{k}" if prefix else str(k)
        out.extend(_paths(v, p, depth - 1) if isinstance(v, dict) else [p])
    return out


def _at_or_after(value: Any, stream: RestStream, until: dt.datetime) -> bool:
    if value is None:
        return False
    try:
        return parse_cursor(str(value), stream.cursor) >= until
    except ValueError:
        return False  # unparsable cursors land; validation reports them


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); 1 s when absent or odd."""
    if not value:
        return 1.0
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, min((when - dt.datetime.now(when.tzinfo)).total_seconds(), 300.0))
        except (TypeError, ValueError):
            return 1.0
