"""``kind: rest`` — an HTTP/JSON API such as the provincial public-health platform (基本公共卫生).

Built on ``requests`` (a ``Session`` per extraction, connection reuse). What a county API needs and what this
does about it:

- auth: a bearer token exchanged for the app key/secret (refreshed before it expires and once on a 401),
  an API key (header or query), HTTP basic, or none — credentials from the connection, never the YAML;
- pagination: page number, offset, a cursor token in the body, or the ``Link`` header;
- incremental: the watermark (minus the overlap) as an ``updated_since``-style parameter; the end of the
  data interval as an ``until`` parameter or, when the API has none, by not landing rows past it;
- failures: a timeout on every request; 5xx, timeouts, dropped connections and truncated bodies are retried
  with exponential backoff and full jitter; 429 waits as long as ``Retry-After`` says; 401/403 fail at once
  with a message saying which credential to check. Pages are yielded as they arrive (bounded memory).
"""

from __future__ import annotations

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
    OffsetPaginator,
    PageNumberPaginator,
    RestSource,
    RestStream,
)

log = logging.getLogger(__name__)
_MAX_THROTTLED = 120  # 429 answers tolerated in one extraction before giving up


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
    """Worth retrying: 5xx, timeouts, broken connections, bodies that end early."""


class RestConnector(Connector):
    kind = "rest"
    config_model = RestSource

    def __init__(self, source: RestSource, connection=None):
        super().__init__(source, connection)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "countyhealth-connector/1"
        self._token: str | None = None
        self._token_expires = 0.0
        self.requests_made = 0
        self.retries = 0
        self.throttled = 0

    # ---- plumbing ------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        base = self.source.base_url or self.connection.base_url()
        return base.rstrip("/") + "/"

    def _where(self, path: str) -> str:
        return f"{self.source.path} ({path})"

    def _authorise(self, headers: dict, params: dict, *, force: bool = False) -> None:
        auth = self.source.auth
        conn = self.connection
        if isinstance(auth, BearerTokenAuth):
            if force or self._token is None or time.monotonic() > self._token_expires - 30:
                self._fetch_token(auth)
            headers["Authorization"] = f"Bearer {self._token}"
        elif isinstance(auth, ApiKeyAuth):
            key = conn.password or conn.extra.get("api_key")
            (headers if auth.location == "header" else params)[auth.name] = key
        elif isinstance(auth, BasicAuth):
            import base64

            pair = f"{conn.login or ''}:{conn.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def _fetch_token(self, auth: BearerTokenAuth) -> None:
        conn = self.connection
        body = {k: v.format(login=conn.login or "", password=conn.password or "") for k, v in auth.body.items()}
        data = self._send("POST", auth.token_path, json_body=body, authorise=False)
        token = dig(data, auth.token_field)
        if not token:
            raise ExtractError(f"{self._where(auth.token_path)}: the token response has no {auth.token_field!r} — "
                               "check `auth.token_field`")
        self._token = str(token)
        ttl = dig(data, auth.expires_in_field) if auth.expires_in_field else None
        self._token_expires = time.monotonic() + (float(ttl) if ttl else 3600.0)

    def _wait(self, attempt: int) -> float:
        r = self.source.retry
        return random.uniform(0, min(r.max_backoff, r.backoff * 2 ** attempt))  # full jitter

    def _send(self, method: str, path: str, *, params: dict | None = None, json_body: dict | None = None,
              authorise: bool = True) -> Any:
        """One logical request with retries; returns parsed JSON (and the response for Link headers)."""
        url = urljoin(self.base_url, path.lstrip("/")) if not path.startswith("http") else path
        attempt = 0
        reauthorised = False
        while True:
            headers: dict = {"Accept": "application/json"}
            query = dict(params or {})
            if authorise:
                self._authorise(headers, query)
            try:
                self.requests_made += 1
                resp = self.session.request(method, url, params=query, json=json_body, headers=headers,
                                            timeout=self.source.timeout)
                if resp.status_code == 429:
                    self.throttled += 1
                    if self.throttled > _MAX_THROTTLED:
                        raise ExtractError(f"{self._where(path)}: the API kept answering 429 Too Many Requests — "
                                           "lower the request rate or ask the platform to raise our quota")
                    time.sleep(_retry_after(resp.headers.get("Retry-After")))
                    continue
                if resp.status_code == 401 and authorise and isinstance(self.source.auth, BearerTokenAuth) \
                        and not reauthorised:
                    reauthorised = True  # the token may have expired early: get a new one, once
                    self._token = None
                    continue
                if resp.status_code in (401, 403):
                    what = "refused our credentials (401)" if resp.status_code == 401 else "forbade the request (403)"
                    raise ExtractError(
                        f"{self._where(path)}: the API {what} — check the key/secret or account of connection "
                        f"{self.source.connection.conn_id or self.source.connection.url_env!r} and its permissions")
                if resp.status_code >= 500:
                    raise _Transient(f"HTTP {resp.status_code}")
                if resp.status_code >= 400:
                    raise ExtractError(f"{self._where(path)}: HTTP {resp.status_code}: "
                                       f"{privacy.scrub(resp.text[:200])} — check the stream's path and params")
                try:
                    data = resp.json()
                except (ValueError, requests.exceptions.JSONDecodeError):
                    raise _Transient("response body is not complete JSON") from None
                self._last_response = resp
                return data
            except (_Transient, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                attempt += 1
                if attempt >= self.source.retry.attempts:
                    raise ExtractError(f"{self._where(path)}: gave up after {attempt} attempts "
                                       f"({type(exc).__name__}: {privacy.scrub(str(exc))[:200]}) — the platform is "
                                       "down or too slow; the stream catches up on the next run") from None
                self.retries += 1
                pause = self._wait(attempt)
                log.warning("%s: %s; retry %d in %.1fs", self._where(path), type(exc).__name__, attempt, pause)
                time.sleep(pause)

    # ---- the connector API ---------------------------------------------------------------------------
    def check(self) -> None:
        if isinstance(self.source.auth, BearerTokenAuth):
            self._fetch_token(self.source.auth)

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
        total = dig(self._send("GET", stream.path, params=params), total_field)
        return int(total) if total is not None else None

    def _params(self, stream: RestStream, window: ExtractWindow) -> dict:
        params: dict = dict(stream.params)
        if stream.cursor and stream.since_param and window.since:
            params[stream.since_param] = format_cursor(window.since, stream.cursor)
        if stream.cursor and stream.until_param and window.until:
            params[stream.until_param] = format_cursor(window.until, stream.cursor)
        return params

    def extract(self, stream_name: str, window: ExtractWindow) -> Extraction:
        stream: RestStream = self.stream(stream_name)
        extra: dict = {}
        return Extraction(self._batches(stream, window, extra), extra=extra)

    def _pages(self, stream: RestStream, window: ExtractWindow) -> Iterator[list]:
        paginator = stream.paginator or self.source.paginator
        params = self._params(stream, window)
        if isinstance(paginator, PageNumberPaginator):
            page, seen = paginator.first_page, 0
            while True:
                data = self._send("GET", stream.path, params={**params, paginator.page_param: page,
                                                               paginator.size_param: paginator.size})
                records = self._records(stream, data)
                yield records
                seen += len(records)
                total = dig(data, paginator.total_field) if paginator.total_field else None
                if len(records) < paginator.size or (total is not None and seen >= int(total)):
                    return
                page += 1
        elif isinstance(paginator, OffsetPaginator):
            offset = 0
            while True:
                data = self._send("GET", stream.path, params={**params, paginator.offset_param: offset,
                                                               paginator.limit_param: paginator.limit})
                records = self._records(stream, data)
                yield records
                offset += len(records)
                total = dig(data, paginator.total_field) if paginator.total_field else None
                if len(records) < paginator.limit or (total is not None and offset >= int(total)):
                    return
        elif isinstance(paginator, CursorPaginator):
            token = None
            while True:
                query = {**params, **({paginator.cursor_param: token} if token else {})}
                data = self._send("GET", stream.path, params=query)
                yield self._records(stream, data)
                token = dig(data, paginator.next_field)
                if not token:
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
        for records in self._pages(stream, window):
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
        extra.update(requests=self.requests_made, retries=self.retries, throttled=self.throttled,
                     rows_after_window=dropped)


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

