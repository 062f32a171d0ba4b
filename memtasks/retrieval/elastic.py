"""Elasticsearch backend: the same index-then-top-k interface as :class:`BM25Index`, on a server.

Connection settings come from the environment, never from task files or
command lines, so that no credential reaches a results file or a log:

- ``MEMTASKS_ES_URL``: the server, e.g. ``https://es.example.org:9200``;
- ``MEMTASKS_ES_API_KEY`` (base64 or ``id:key``), or ``MEMTASKS_ES_USERNAME``
  and ``MEMTASKS_ES_PASSWORD``;
- ``MEMTASKS_ES_CA_CERTS``: a CA bundle to verify the server's TLS certificate;
- ``MEMTASKS_ES_TIMEOUT``: seconds one request may take, retries and back-off
  included (default 30).

Each run indexes its corpus into an index of its own (``memtasks-`` + a random
suffix) with an explicit mapping (the ``standard`` analyzer, BM25 with k1 = 1.2
and b = 0.75, one shard), bulk-loads it (documents the server pushes back with
HTTP 429 are sent again after a pause), refreshes, checks the document count,
searches with ``_msearch`` sorted by score then id, and deletes the index at
the end, also after a failure. A user-given ``index`` name keeps the index and
reuses it on later runs when it holds the same corpus (checked by a fingerprint
in the mapping's ``_meta``).

Every request has a deadline that covers its retries: a server that stops
answering ends the run after ``MEMTASKS_ES_TIMEOUT`` seconds, not minutes. Every
answer is checked before it is used: one ``_msearch`` response per query, each
hit with its ``_id`` and its ``sort`` values (score, id) naming an indexed
document. Any failure (connection, credentials, a document the server rejects,
a shard that does not answer, an answer of the wrong shape) raises
:class:`ElasticsearchBackendError` with one line naming the server (without
credentials), the request and what to check: a rate is never computed on a
partial index or partial results.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tqdm.auto import tqdm

from memtasks.retrieval.analysis import stopwords

SCHEMA_VERSION = 1
QUERY_ANALYZER_STOP = "memtasks_query_stop"
BULK_CHUNK = 500
BULK_BYTES = 20 * 1024 * 1024
MSEARCH_BATCH = 100
DEFAULT_TIMEOUT = 30.0
# After the run has already failed (the server gone, or Ctrl-C), deleting the
# temporary index gets only this long, so that the user is not kept waiting.
CLEANUP_TIMEOUT = 5.0
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
FIRST_PAUSE = 0.25

T = TypeVar("T")


class ElasticsearchBackendError(OSError):
    """An Elasticsearch request failed; the message names the server (without credentials) and what to check.

    ``unreachable`` is true when the server did not answer at all (no connection, or no answer
    before the deadline).
    """

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def safe_url(url: str) -> str:
    """``url`` without user name and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def request_timeout(env: Mapping[str, str] | None = None) -> float:
    """Seconds one request may take, retries included: ``MEMTASKS_ES_TIMEOUT``, else 30."""
    env = os.environ if env is None else env
    raw = env.get("MEMTASKS_ES_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ElasticsearchBackendError(f"MEMTASKS_ES_TIMEOUT must be a number of seconds above 0, got {raw!r}")
    return seconds


def _credentials(url: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Which credentials a client built from ``env`` sends (in words), and the secret values to keep out of messages."""
    parts = urlsplit(url)
    in_url = [parts.password, _base64(f"{parts.username}:{parts.password}")] if parts.password else []
    if env.get("MEMTASKS_ES_API_KEY"):
        key = env["MEMTASKS_ES_API_KEY"]
        return "the API key in MEMTASKS_ES_API_KEY", [key, _base64(key), *key.split(":", 1)[1:], *in_url]
    if env.get("MEMTASKS_ES_USERNAME"):
        password = env.get("MEMTASKS_ES_PASSWORD", "")
        header = _base64(f"{env['MEMTASKS_ES_USERNAME']}:{password}")
        return "MEMTASKS_ES_USERNAME and MEMTASKS_ES_PASSWORD", [password, header, *in_url] if password else in_url
    if parts.username is not None:
        return "the user name and password in MEMTASKS_ES_URL", in_url
    return "no credentials", []


def _base64(text: str) -> str:
    """``text`` as the Authorization header carries it (a server may quote the header back)."""
    return base64.b64encode(text.encode()).decode()


def client_from_env(url: str | None = None, env: Mapping[str, str] | None = None, **options):
    """An ``elasticsearch.Elasticsearch`` client configured from the ``MEMTASKS_ES_*`` variables, and its URL.

    The client itself never retries: :class:`ElasticsearchIndex` retries within each request's deadline.
    """
    try:
        from elasticsearch import Elasticsearch
    except ImportError:
        raise ElasticsearchBackendError(
            "the Elasticsearch backend needs the official client: pip install 'memtasks[es8]' "
            "for an 8.x server or 'memtasks[es9]' for a 9.x server"
        ) from None
    env = os.environ if env is None else env
    url = url or env.get("MEMTASKS_ES_URL")
    if not url:
        raise ElasticsearchBackendError("the Elasticsearch backend needs a server: set MEMTASKS_ES_URL")
    kwargs = {"request_timeout": request_timeout(env), "retry_on_timeout": False, "max_retries": 0, **options}
    if env.get("MEMTASKS_ES_API_KEY"):
        key = env["MEMTASKS_ES_API_KEY"]
        kwargs["api_key"] = tuple(key.split(":", 1)) if ":" in key else key
    elif env.get("MEMTASKS_ES_USERNAME"):
        kwargs["basic_auth"] = (env["MEMTASKS_ES_USERNAME"], env.get("MEMTASKS_ES_PASSWORD", ""))
    if env.get("MEMTASKS_ES_CA_CERTS"):
        kwargs["ca_certs"] = env["MEMTASKS_ES_CA_CERTS"]
    return Elasticsearch(url, **kwargs), url


def index_body(fingerprint: str, n_docs: int) -> dict:
    """Settings and explicit mapping of a memtasks corpus index."""
    return {
        "settings": {
            # One shard: BM25 statistics are those of the whole corpus, as in the embedded index.
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "refresh_interval": "-1",
            "similarity": {"memtasks_bm25": {"type": "BM25", "k1": 1.2, "b": 0.75, "discount_overlaps": True}},
            "analysis": {
                "filter": {"memtasks_stop": {"type": "stop", "stopwords": sorted(stopwords())}},
                "analyzer": {
                    QUERY_ANALYZER_STOP: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "memtasks_stop"]}
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {"memtasks": {"schema": SCHEMA_VERSION, "fingerprint": fingerprint, "documents": n_docs, "complete": False}},
            "properties": {
                "id": {"type": "long"},
                "text": {"type": "text", "analyzer": "standard", "similarity": "memtasks_bm25", "index_options": "freqs"},
            },
        },
    }


def search_body(query: str, k: int, query_stopwords: bool) -> dict:
    """One ``_msearch`` body: a match query (a repeated term weighs by its count), ties by id."""
    match: dict = {"query": query}
    if query_stopwords:
        match["analyzer"] = QUERY_ANALYZER_STOP
    return {
        "query": {"match": {"text": match}},
        "size": k,
        "sort": [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}],
        "_source": False,
        "track_total_hits": False,
    }


def corpus_fingerprint(ids: Sequence[int], texts: Sequence[str]) -> str:
    digest = hashlib.sha256(f"memtasks-es-{SCHEMA_VERSION}".encode())
    for doc_id, text in zip(ids, texts):
        digest.update(str(int(doc_id)).encode())
        digest.update(b"\0")
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _bulk_chunks(ids: Sequence[int], texts: Sequence[str]) -> Iterator[list[tuple[int, str]]]:
    """Documents in groups of at most ``BULK_CHUNK`` documents and about ``BULK_BYTES`` of text."""
    chunk: list[tuple[int, str]] = []
    size = 0
    for doc_id, text in zip(ids, texts):
        weight = len(text.encode("utf-8")) + 64
        if chunk and (len(chunk) == BULK_CHUNK or size + weight > BULK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((doc_id, text))
        size += weight
    if chunk:
        yield chunk


def _shape(value: Any) -> str:
    """What a JSON value is, in words, for messages about answers of the wrong shape."""
    if isinstance(value, str):
        snippet = " ".join(value.split())[:60]
        return f"text, not JSON ({snippet!r})"
    if isinstance(value, bytes):
        return f"bytes, not JSON ({value[:60]!r})"
    names = {dict: "a JSON object", list: "a JSON list", bool: "a JSON boolean", int: "a JSON number", float: "a JSON number"}
    return "JSON null" if value is None else names.get(type(value), type(value).__name__)


class ElasticsearchIndex:
    """BM25 retrieval on an Elasticsearch server; ranks as :class:`~memtasks.retrieval.BM25Index`.

    Use as a context manager (or call :meth:`close`) so that the run's
    temporary index is deleted whatever happens. ``timeout`` is the deadline of
    each request in seconds, retries included (default: ``MEMTASKS_ES_TIMEOUT``,
    else 30).
    """

    def __init__(self, url: str | None = None, index: str | None = None, query_stopwords: bool = False, client=None,
                 env: Mapping[str, str] | None = None, timeout: float | None = None):
        env = os.environ if env is None else env
        if client is None:
            client, url = client_from_env(url, env)
        url = url or env.get("MEMTASKS_ES_URL") or ""
        self.client = client
        self.url = safe_url(url)
        self.timeout = request_timeout(env) if timeout is None else float(timeout)
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a number of seconds above 0, got {timeout!r}")
        self._sent_credentials, self._secrets = _credentials(url, env)
        self.query_stopwords = query_stopwords
        self.keep = index is not None
        self.name = index or f"memtasks-{uuid.uuid4().hex[:16]}"
        self._ids: frozenset[int] = frozenset()
        self._created = False
        self._ready = False
        self._search_type: str | None = None

    def __enter__(self) -> ElasticsearchIndex:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc is None:
            self.close()
            return
        try:
            self._delete(deadline=time.monotonic() + min(self.timeout, CLEANUP_TIMEOUT), retry=False)
        except ElasticsearchBackendError:
            # A failed clean-up must not hide the error that ended the run; it is named in it.
            if isinstance(exc, ElasticsearchBackendError):
                exc.args = (f"{exc} (the temporary index '{self.name}' could not be deleted afterwards: delete it on the server)",)

    # Requests: deadlines, retries and one line per failure.

    def _call(self, action: str, request: Callable[[Any], Any], retry: bool = True, deadline: float | None = None) -> Any:
        """The body of ``request(client)``, retried on transient failures until ``deadline`` (default: now + timeout).

        Retried: a lost connection and HTTP 429, 502, 503 and 504, after pauses of 0.25 s, 0.5 s, 1 s, ...
        Each attempt may take only what is left of the deadline, so the whole call never exceeds it.
        """
        import elastic_transport
        import elasticsearch

        deadline = time.monotonic() + self.timeout if deadline is None else deadline
        pause, attempts = FIRST_PAUSE, 0
        while True:
            attempts += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._late(action, attempts - 1)
            try:
                return request(self.client.options(request_timeout=left)).body
            except (elastic_transport.TransportError, elasticsearch.ApiError) as error:
                if retry and self._transient(error) and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    pause *= 2
                    continue
                raise self._failure(error, action, attempts) from None

    @staticmethod
    def _transient(error: Exception) -> bool:
        import elastic_transport
        import elasticsearch

        if isinstance(error, (elastic_transport.TlsError, elastic_transport.ConnectionTimeout)):
            return False
        if isinstance(error, elastic_transport.ConnectionError):
            return True
        return isinstance(error, elasticsearch.ApiError) and error.meta.status in TRANSIENT_STATUS

    def _late(self, action: str, attempts: int) -> ElasticsearchBackendError:
        tries = f" in {attempts} attempts" if attempts > 1 else ""
        return ElasticsearchBackendError(
            f"Elasticsearch at {self.url} did not answer within {self.timeout:g} s{tries} while trying to {action}: "
            "check that the server is healthy and not overloaded, or allow each request more time with "
            f"MEMTASKS_ES_TIMEOUT=<seconds> (now {self.timeout:g})",
            unreachable=True,
        )

    def _failure(self, error: Exception, action: str, attempts: int) -> ElasticsearchBackendError:
        """One line for a failed request, naming the server, the request and what to check."""
        import elastic_transport
        import elasticsearch

        where = f"Elasticsearch at {self.url}"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(error, elastic_transport.ConnectionTimeout):
            return self._late(action, attempts)
        if isinstance(error, elastic_transport.TlsError):
            return ElasticsearchBackendError(
                f"{where}: TLS handshake failed ({self._clean(str(error))}) while trying to {action}: "
                "check MEMTASKS_ES_CA_CERTS (the CA bundle that signed the server's certificate) and the URL's scheme",
                unreachable=True,
            )
        if isinstance(error, elastic_transport.ConnectionError):
            return ElasticsearchBackendError(
                f"{where}: cannot connect ({self._connection_reason(error)}){tries} while trying to {action}: "
                "check that the server is running and that MEMTASKS_ES_URL names it",
                unreachable=True,
            )
        if isinstance(error, elastic_transport.SerializationError):
            return ElasticsearchBackendError(
                f"{where} answered with a body that is not JSON ({self._clean(error.message)}) while trying to {action}: "
                "check that MEMTASKS_ES_URL names an Elasticsearch server, not a proxy or another service"
            )
        if isinstance(error, elastic_transport.TransportError):
            return ElasticsearchBackendError(
                f"{where}: the request failed ({type(error).__name__}: {self._clean(str(error))}) while trying to {action}"
            )
        status = error.meta.status
        if isinstance(error, elasticsearch.UnsupportedProductError):
            if not isinstance(error.body, (dict, list)):
                return ElasticsearchBackendError(
                    f"{where} answered HTTP {status} with {_shape(error.body)} while trying to {action}: "
                    "check that MEMTASKS_ES_URL names an Elasticsearch server, not a proxy or another service"
                )
            return ElasticsearchBackendError(
                f"{where} does not say it is Elasticsearch (no X-Elastic-Product header) while trying to {action}: "
                "check that MEMTASKS_ES_URL names an Elasticsearch server"
            )
        if isinstance(error, elasticsearch.AuthenticationException):
            return ElasticsearchBackendError(
                f"{where} rejected the credentials (HTTP 401, sent {self._sent_credentials}) while trying to {action}: "
                "check MEMTASKS_ES_API_KEY, or MEMTASKS_ES_USERNAME and MEMTASKS_ES_PASSWORD"
            )
        if isinstance(error, elasticsearch.AuthorizationException):
            return ElasticsearchBackendError(
                f"{where}: the credentials ({self._sent_credentials}) may not {action} (HTTP 403, {self._reason(error)}): "
                f"grant them the index privileges create_index, write, read and delete_index on '{self.name}'"
            )
        if status == 404 and self._error_type(error) == "index_not_found_exception":
            return ElasticsearchBackendError(
                f"{where}: index '{self.name}' does not exist ({self._reason(error)}) while trying to {action}: "
                "check the index name (es_index) and that nothing deleted it during the run"
            )
        hint = ": check that MEMTASKS_ES_URL names the server's root" if status == 404 else ""
        return ElasticsearchBackendError(f"{where}: could not {action} (HTTP {status}, {self._reason(error)}){tries}{hint}")

    def _malformed(self, action: str, what: str) -> ElasticsearchBackendError:
        return ElasticsearchBackendError(f"Elasticsearch at {self.url}: malformed answer while trying to {action}: {what}")

    def _clean(self, message: str) -> str:
        """``message`` on one line, at most 200 characters, without user names, passwords or keys."""
        message = re.sub(r"//[^/@\s]+@", "//", message)
        for secret in self._secrets:
            message = message.replace(secret, "***")
        message = " ".join(message.split())
        return message if len(message) <= 200 else message[:199] + "…"

    @staticmethod
    def _connection_reason(error: BaseException) -> str:
        # The transport keeps urllib3's error as the cause, whose message nests
        # object addresses; the operating system's reason is what a person can act on.
        chain: list[str] = []
        while error is not None and len(chain) < 8:
            chain.append(str(error))
            error = error.__cause__ or error.__context__
        found = re.findall(r"\[Errno -?\d+\] [^()\[\]'\"]+", " ".join(chain))
        return found[-1].strip() if found else chain[0]

    @staticmethod
    def _error_type(error) -> str | None:
        body = getattr(error, "body", None)
        cause = body.get("error") if isinstance(body, dict) else None
        return cause.get("type") if isinstance(cause, dict) else None

    def _reason(self, error) -> str:
        body = getattr(error, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            cause = body["error"]
            return self._clean(f"{cause.get('type')}: {cause.get('reason')}")
        if isinstance(body, (str, bytes)) or body is None:
            return _shape(body) if body else "an empty body"
        return self._clean(str(getattr(error, "message", error)))

    def _field(self, body: Any, path: str, kind: type[T], action: str) -> T:
        """``body[a][b]...`` for ``path`` = ``"a.b..."``, which must be a ``kind``; otherwise one line saying what came."""
        value = body
        for depth, key in enumerate(path.split(".")):
            if not isinstance(value, dict):
                where = "the body" if depth == 0 else f"'{'.'.join(path.split('.')[:depth])}'"
                raise self._malformed(action, f"{where} is {_shape(value)}, not a JSON object with '{path}'")
            if key not in value:
                raise self._malformed(action, f"no '{path}' in the answer")
            value = value[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._malformed(action, f"'{path}' is {_shape(value)}, expected {kind.__name__}")
        return value

    def _index_entry(self, body: Any, action: str) -> dict:
        """This index's entry in a per-index answer (``{name: {...}}``); an alias answers under the index's own name."""
        if not isinstance(body, dict):
            raise self._malformed(action, f"the body is {_shape(body)}, not a JSON object")
        entry = body.get(self.name, next(iter(body.values())) if len(body) == 1 else None)
        if not isinstance(entry, dict):
            raise self._malformed(action, f"no entry for index '{self.name}' (answered for: {', '.join(map(str, body)) or 'nothing'})")
        return entry

    # Indexing.

    def check_server(self) -> None:
        """Connect and check that the server's major version is the installed client's."""
        import elasticsearch

        action = "read the server version"
        # The first contact is not retried: a server that is not there is said at once.
        info = self._call(action, lambda client: client.info(), retry=False)
        server = self._field(info, "version.number", str, action)
        client_major = elasticsearch.__versionstr__.split(".")[0]
        if server.split(".")[0] != client_major:
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url} is version {server} but the installed client is "
                f"{elasticsearch.__versionstr__}: install the client of the same major version "
                f"(pip install 'memtasks[es{server.split('.')[0]}]')"
            )

    def add(self, ids: Sequence[int], texts: Sequence[str], progress: bool = False) -> None:
        """Index ``texts`` under ``ids`` (or reuse the named index if it holds exactly them)."""
        ids, texts = [int(i) for i in ids], list(texts)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if len(set(ids)) != len(ids):
            raise ValueError("document ids must be unique")
        self.check_server()
        fingerprint = corpus_fingerprint(ids, texts)
        exists = self._call(f"check whether index '{self.name}' exists", lambda c: c.indices.exists(index=self.name))
        if exists is True and self.keep:
            self._reuse(fingerprint, len(ids))
            self._ids = frozenset(ids)
            return
        if exists is True:
            raise ElasticsearchBackendError(f"Elasticsearch at {self.url}: index '{self.name}' already exists")
        body = index_body(fingerprint, len(ids))
        # Not retried: a create that reached the server before the connection broke would fail as "exists".
        self._call(f"create index '{self.name}'", lambda c: c.indices.create(
            index=self.name, settings=body["settings"], mappings=body["mappings"]), retry=False)
        self._created = True
        try:
            self._fill(ids, texts, body, progress)
        except BaseException:
            # Never leave a partial index behind, not even a named one.
            self.keep = False
            raise
        self._ids = frozenset(ids)

    def _count(self) -> int:
        action = f"count the documents of '{self.name}'"
        self._call(f"refresh index '{self.name}'", lambda c: c.indices.refresh(index=self.name))
        return self._field(self._call(action, lambda c: c.count(index=self.name)), "count", int, action)

    def _fill(self, ids: Sequence[int], texts: Sequence[str], body: dict, progress: bool) -> None:
        self._bulk(ids, texts, progress)
        self._call(f"enable refresh on '{self.name}'", lambda c: c.indices.put_settings(
            index=self.name, settings={"index": {"refresh_interval": None}}))
        count = self._count()
        if count != len(ids):
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' holds {count} of the {len(ids)} documents sent"
            )
        meta = dict(body["mappings"]["_meta"]["memtasks"], complete=True)
        self._call(f"mark index '{self.name}' complete", lambda c: c.indices.put_mapping(index=self.name, meta={"memtasks": meta}))
        self._ready = True

    def _bulk(self, ids: Sequence[int], texts: Sequence[str], progress: bool) -> None:
        """Send the documents in ``_bulk`` requests; those the server pushes back (HTTP 429) go again within the deadline."""
        bar = tqdm(total=len(ids), desc="index (Elasticsearch)", unit="text", disable=not progress)
        for chunk in _bulk_chunks(ids, texts):
            deadline = time.monotonic() + self.timeout
            pending, pause = chunk, FIRST_PAUSE
            while pending:
                action = f"bulk-index documents {pending[0][0]}..{pending[-1][0]} into '{self.name}'"
                operations: list[dict] = []
                for doc_id, text in pending:
                    operations += [{"index": {"_index": self.name, "_id": str(doc_id)}}, {"id": doc_id, "text": text}]
                answer = self._call(action, lambda c: c.bulk(operations=operations), deadline=deadline)
                pushed_back = []
                for document, status, error in self._bulk_items(answer, pending, action):
                    if status == 429:
                        pushed_back.append(document)
                    elif not 200 <= status < 300:
                        raise ElasticsearchBackendError(
                            f"Elasticsearch at {self.url}: document {document[0]} was not indexed into "
                            f"'{self.name}' (HTTP {status}: {self._clean(str(error))})"
                        )
                bar.update(len(pending) - len(pushed_back))
                pending = pushed_back
                if pending:
                    if time.monotonic() + pause >= deadline:
                        raise self._late(action + " (the server kept answering HTTP 429, too busy)", 2)
                    time.sleep(pause)
                    pause *= 2
        bar.close()

    def _bulk_items(self, answer: Any, sent: Sequence[tuple[int, str]], action: str) -> Iterator[tuple[tuple[int, str], int, Any]]:
        """(document, HTTP status, error) for each document of a ``_bulk`` answer, which must have one item per document."""
        items = self._field(answer, "items", list, action)
        if len(items) != len(sent):
            raise self._malformed(action, f"{len(items)} items for {len(sent)} documents")
        for position, (document, item) in enumerate(zip(sent, items), start=1):
            result = next(iter(item.values()), None) if isinstance(item, dict) and len(item) == 1 else None
            status = result.get("status") if isinstance(result, dict) else None
            if not isinstance(status, int) or isinstance(status, bool):
                raise self._malformed(action, f"item {position} (document {document[0]}) has no status")
            if result.get("_id") not in (None, str(document[0])):
                raise self._malformed(action, f"item {position} is about document {result.get('_id')!r}, not {document[0]}")
            error = result.get("error", {})
            yield document, status, error.get("reason", error) if isinstance(error, dict) else error

    def _reuse(self, fingerprint: str, n_docs: int) -> None:
        action = f"read the mapping of index '{self.name}'"
        mappings = self._field(self._index_entry(self._call(action, lambda c: c.indices.get_mapping(index=self.name)), action),
                               "mappings", dict, action)
        meta = mappings.get("_meta", {}).get("memtasks", {}) if isinstance(mappings.get("_meta"), dict) else {}
        if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint or meta.get("schema") != SCHEMA_VERSION:
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' was not built by memtasks from this corpus: "
                "give another es_index, or delete that index"
            )
        if not meta.get("complete"):
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' is incomplete (an earlier run stopped while "
                "indexing): delete it and run again"
            )
        count = self._count()
        if count != n_docs:
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' holds {count} documents, not {n_docs}: delete it and run again"
            )
        action = f"read the settings of index '{self.name}'"
        entry = self._index_entry(self._call(action, lambda c: c.indices.get_settings(index=self.name)), action)
        shards = self._field(entry, "settings.index", dict, action).get("number_of_shards", 1)
        try:
            several = int(shards) > 1
        except (TypeError, ValueError):
            raise self._malformed(action, f"number_of_shards is {shards!r}, not a number") from None
        if several:
            # Term statistics of all shards, so that scores do not depend on sharding.
            self._search_type = "dfs_query_then_fetch"
        self._ready = True

    # Searching.

    def _msearch(self, queries: Sequence[str], k: int, first: int, total: int, request: int, requests: int) -> list[list[int]]:
        """Rankings of ``queries`` (numbers ``first + 1``... of ``total``), the ``request``-th ``_msearch`` of ``requests``."""
        header: dict = {"index": self.name}
        if self._search_type:
            header["search_type"] = self._search_type
        searches: list[dict] = []
        for query in queries:
            searches += [header, search_body(query, k, self.query_stopwords)]
        action = (f"search index '{self.name}' (_msearch request {request} of {requests}, "
                  f"queries {first + 1}-{first + len(queries)} of {total})")
        responses = self._field(self._call(action, lambda c: c.msearch(searches=searches)), "responses", list, action)
        if len(responses) != len(queries):
            raise self._malformed(action, f"{len(responses)} responses for {len(queries)} queries")
        return [self._ranking(response, f"query {first + i + 1} of {total}", k, action) for i, response in enumerate(responses)]

    def _ranking(self, response: Any, query: str, k: int, action: str) -> list[int]:
        """Document ids of one ``_msearch`` response, best first; anything but a complete, well-formed answer is an error."""
        if not isinstance(response, dict):
            raise self._malformed(action, f"the response for {query} is {_shape(response)}, not a JSON object")
        if "error" in response:
            error = response["error"]
            reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else error
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: the search for {query} failed (HTTP {response.get('status', '?')}, "
                f"{self._clean(str(reason))}) while trying to {action}"
            )
        shards = response.get("_shards") if isinstance(response.get("_shards"), dict) else {}
        if response.get("timed_out") or shards.get("failed", 0):
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: the search for {query} returned partial results "
                f"({shards.get('failed', 0)} of {shards.get('total', '?')} shards failed, timed out: "
                f"{bool(response.get('timed_out'))}) while trying to {action}"
            )
        hits = response.get("hits")
        hits = hits.get("hits") if isinstance(hits, dict) else None
        if not isinstance(hits, list):
            raise self._malformed(action, f"the response for {query} has no hits.hits list")
        if len(hits) > k:
            raise self._malformed(action, f"{len(hits)} hits for {query}, more than the {k} asked for")
        ranked: list[int] = []
        for rank, hit in enumerate(hits, start=1):
            what = f"hit {rank} of {query}"
            sort = hit.get("sort") if isinstance(hit, dict) else None
            if not (isinstance(sort, list) and len(sort) == 2 and type(sort[1]) is int):
                shown = self._clean(json.dumps(sort if isinstance(hit, dict) else hit, ensure_ascii=False))
                raise self._malformed(action, f"{what} has no 'sort' [score, id] (got {shown})")
            doc_id = sort[1]
            if "_id" not in hit:
                raise self._malformed(action, f"{what} has no '_id'")
            if hit["_id"] != str(doc_id):
                raise self._malformed(action, f"{what} has _id {self._clean(repr(hit['_id']))} but sorts as document {doc_id}")
            if doc_id not in self._ids:
                raise self._malformed(action, f"{what} is document {doc_id}, which was not indexed")
            if doc_id in ranked:
                raise self._malformed(action, f"{what} repeats document {doc_id}")
            ranked.append(doc_id)
        return ranked

    def top_k(self, queries: Iterable[str], k: int = 10, workers: int = 1, progress: bool = False) -> list[list[int]]:
        """Ids of the ``k`` best texts for each query, best first, in ``_msearch`` batches; one ranking per query."""
        if not self._ready:
            raise RuntimeError("the index is empty: call add() first")
        queries = list(queries)
        if k <= 0:
            return [[] for _ in queries]
        batches = [queries[i : i + MSEARCH_BATCH] for i in range(0, len(queries), MSEARCH_BATCH)]
        bar = tqdm(total=len(queries), desc="retrieve (Elasticsearch)", unit="query", disable=not progress)

        def run(number: int) -> list[list[int]]:
            ranked = self._msearch(batches[number], k, number * MSEARCH_BATCH, len(queries), number + 1, len(batches))
            bar.update(len(batches[number]))
            return ranked

        if workers <= 1 or len(batches) <= 1:
            results = [ranked for number in range(len(batches)) for ranked in run(number)]
        else:
            pool = ThreadPoolExecutor(max_workers=min(workers, len(batches)))
            try:
                results = [ranked for batch in pool.map(run, range(len(batches))) for ranked in batch]
            except BaseException:
                # A failed batch or Ctrl-C: the batches not started are dropped, not run to the end.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        bar.close()
        return results

    def _delete(self, deadline: float | None = None, retry: bool = True) -> None:
        if self._created and not self.keep:
            self._created = False
            self._call(f"delete index '{self.name}'", lambda c: c.indices.delete(index=self.name, ignore_unavailable=True),
                       retry=retry, deadline=deadline)

    def close(self) -> None:
        """Delete the run's temporary index (a named index is kept)."""
        self._delete()
