"""Elasticsearch backend: the same index-then-top-k interface as :class:`BM25Index`, on a server.

Connection settings come from the environment, never from task files or
command lines, so that no credential reaches a results file or a log:

- ``MEMTASKS_ES_URL``: the server, e.g. ``https://es.example.org:9200``;
- ``MEMTASKS_ES_API_KEY`` (base64 or ``id:key``), or ``MEMTASKS_ES_USERNAME``
  and ``MEMTASKS_ES_PASSWORD``;
- ``MEMTASKS_ES_CA_CERTS``: a CA bundle to verify the server's TLS certificate.

Each run indexes its corpus into an index of its own (``memtasks-`` + a random
suffix) with an explicit mapping (the ``standard`` analyzer, BM25 with k1 = 1.2
and b = 0.75, one shard), bulk-loads it with retries and back-off on HTTP 429,
refreshes, checks the document count, searches with ``_msearch`` sorted by
score then id, and deletes the index at the end, also after a failure. A
user-given ``index`` name keeps the index and reuses it on later runs when it
holds the same corpus (checked by a fingerprint in the mapping's ``_meta``).
Any failure (connection, credentials, a document the server rejects, a shard
that does not answer) raises :class:`ElasticsearchBackendError`: a rate is never
computed on a partial index or partial results.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from tqdm.auto import tqdm

from memtasks.retrieval.analysis import stopwords

SCHEMA_VERSION = 1
QUERY_ANALYZER_STOP = "memtasks_query_stop"
BULK_CHUNK = 500
MSEARCH_BATCH = 100


class ElasticsearchBackendError(OSError):
    """An Elasticsearch request failed; the message names the server (without credentials) and what to check."""


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


def client_from_env(url: str | None = None, env: Mapping[str, str] | None = None, **options):
    """An ``elasticsearch.Elasticsearch`` client configured from the ``MEMTASKS_ES_*`` variables."""
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
    kwargs = {"request_timeout": 120, "retry_on_timeout": True, "max_retries": 3, **options}
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


class ElasticsearchIndex:
    """BM25 retrieval on an Elasticsearch server; ranks as :class:`~memtasks.retrieval.BM25Index`.

    Use as a context manager (or call :meth:`close`) so that the run's
    temporary index is deleted whatever happens.
    """

    def __init__(self, url: str | None = None, index: str | None = None, query_stopwords: bool = False, client=None,
                 env: Mapping[str, str] | None = None):
        if client is None:
            client, url = client_from_env(url, env)
        self.client = client
        self.url = safe_url(url or "")
        self.query_stopwords = query_stopwords
        self.keep = index is not None
        self.name = index or f"memtasks-{uuid.uuid4().hex[:16]}"
        self._created = False
        self._ready = False
        self._search_type: str | None = None

    def __enter__(self) -> ElasticsearchIndex:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            self.close()
        except ElasticsearchBackendError:
            # A failed clean-up must not hide the error that ended the run.
            if exc_type is None:
                raise

    @contextmanager
    def _requests(self, action: str):
        """Turn client exceptions into one line naming the server, the index and what to check."""
        import elastic_transport
        import elasticsearch

        where = f"Elasticsearch at {self.url}"
        try:
            yield
        except elasticsearch.AuthenticationException:
            raise ElasticsearchBackendError(
                f"{where} rejected the credentials (HTTP 401) while trying to {action}: "
                "check MEMTASKS_ES_API_KEY, or MEMTASKS_ES_USERNAME and MEMTASKS_ES_PASSWORD"
            ) from None
        except elasticsearch.AuthorizationException as error:
            raise ElasticsearchBackendError(
                f"{where}: the user may not {action} (HTTP 403, {self._reason(error)}): "
                f"grant it the index privileges create_index, write, read and delete_index on '{self.name}'"
            ) from None
        except elasticsearch.NotFoundError as error:
            raise ElasticsearchBackendError(
                f"{where}: index '{self.name}' does not exist ({self._reason(error)}) while trying to {action}: "
                "check the index name (es_index) and that nothing deleted it during the run"
            ) from None
        except elasticsearch.ApiError as error:
            raise ElasticsearchBackendError(
                f"{where}: could not {action} (HTTP {error.meta.status}, {self._reason(error)})"
            ) from None
        except elastic_transport.TlsError as error:
            raise ElasticsearchBackendError(
                f"{where}: TLS handshake failed ({self._clean(str(error))}): "
                "check MEMTASKS_ES_CA_CERTS (the CA bundle that signed the server's certificate) and the URL's scheme"
            ) from None
        except elastic_transport.TransportError as error:
            raise ElasticsearchBackendError(
                f"{where}: cannot connect ({type(error).__name__}: {self._clean(str(error))}) while trying to {action}: "
                "check that the server is running and that MEMTASKS_ES_URL names it"
            ) from None

    def _clean(self, message: str) -> str:
        # Transport messages may quote the URL the client was given; keep user
        # names and passwords out of what is printed.
        message = re.sub(r"//[^/@\s]+@", "//", message)
        return message[:300]

    def _reason(self, error) -> str:
        body = getattr(error, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            cause = body["error"]
            return self._clean(f"{cause.get('type')}: {cause.get('reason')}")
        return self._clean(str(getattr(error, "message", error)))

    def check_server(self) -> None:
        """Connect and check that the server's major version is the installed client's."""
        import elasticsearch

        with self._requests("read the server version"):
            info = self.client.info()
        server = str(info.get("version", {}).get("number", "0"))
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
        with self._requests(f"check whether index '{self.name}' exists"):
            exists = bool(self.client.indices.exists(index=self.name))
        if exists and self.keep:
            self._reuse(fingerprint, len(ids))
            return
        if exists:
            raise ElasticsearchBackendError(f"Elasticsearch at {self.url}: index '{self.name}' already exists")
        body = index_body(fingerprint, len(ids))
        with self._requests(f"create index '{self.name}'"):
            self.client.indices.create(index=self.name, settings=body["settings"], mappings=body["mappings"])
        self._created = True
        try:
            self._fill(ids, texts, body, progress)
        except BaseException:
            # Never leave a partial index behind, not even a named one.
            self.keep = False
            raise

    def _fill(self, ids: Sequence[int], texts: Sequence[str], body: dict, progress: bool) -> None:
        self._bulk(ids, texts, progress)
        with self._requests(f"refresh index '{self.name}'"):
            self.client.indices.put_settings(index=self.name, settings={"index": {"refresh_interval": None}})
            self.client.indices.refresh(index=self.name)
            count = int(self.client.count(index=self.name)["count"])
        if count != len(ids):
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' holds {count} of the {len(ids)} documents sent"
            )
        meta = dict(body["mappings"]["_meta"]["memtasks"], complete=True)
        with self._requests(f"mark index '{self.name}' complete"):
            self.client.indices.put_mapping(index=self.name, meta={"memtasks": meta})
        self._ready = True

    def _bulk(self, ids: Sequence[int], texts: Sequence[str], progress: bool) -> None:
        from elasticsearch import helpers

        actions = ({"_index": self.name, "_id": str(i), "_source": {"id": i, "text": t}} for i, t in zip(ids, texts))
        bar = tqdm(total=len(ids), desc="index (Elasticsearch)", unit="text", disable=not progress)
        with self._requests(f"bulk-index into '{self.name}'"):
            # HTTP 429 (the cluster pushing back) is retried with exponential
            # back-off; any other rejected document stops the run.
            for ok, item in helpers.streaming_bulk(
                self.client, actions, chunk_size=BULK_CHUNK, max_chunk_bytes=20 * 1024 * 1024,
                max_retries=8, initial_backoff=1, max_backoff=60, raise_on_error=False, raise_on_exception=True,
            ):
                if not ok:
                    result = next(iter(item.values()))
                    error = result.get("error", {})
                    reason = error.get("reason", error) if isinstance(error, dict) else error
                    raise ElasticsearchBackendError(
                        f"Elasticsearch at {self.url}: document {result.get('_id')} was not indexed into "
                        f"'{self.name}' (HTTP {result.get('status')}: {reason})"
                    )
                bar.update(1)
        bar.close()

    def _reuse(self, fingerprint: str, n_docs: int) -> None:
        with self._requests(f"read the mapping of index '{self.name}'"):
            mapping = self.client.indices.get_mapping(index=self.name)
            shards = self.client.indices.get_settings(index=self.name)
        meta = next(iter(mapping.values()))["mappings"].get("_meta", {}).get("memtasks", {})
        if meta.get("fingerprint") != fingerprint or meta.get("schema") != SCHEMA_VERSION:
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' was not built by memtasks from this corpus: "
                "give another es_index, or delete that index"
            )
        if not meta.get("complete"):
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' is incomplete (an earlier run stopped while "
                "indexing): delete it and run again"
            )
        with self._requests(f"count the documents of '{self.name}'"):
            self.client.indices.refresh(index=self.name)
            count = int(self.client.count(index=self.name)["count"])
        if count != n_docs:
            raise ElasticsearchBackendError(
                f"Elasticsearch at {self.url}: index '{self.name}' holds {count} documents, not {n_docs}: delete it and run again"
            )
        settings = next(iter(shards.values()))["settings"]["index"]
        if int(settings.get("number_of_shards", 1)) > 1:
            # Term statistics of all shards, so that scores do not depend on sharding.
            self._search_type = "dfs_query_then_fetch"
        self._ready = True

    def _msearch(self, queries: Sequence[str], k: int) -> list[list[int]]:
        header: dict = {"index": self.name}
        if self._search_type:
            header["search_type"] = self._search_type
        searches: list[dict] = []
        for query in queries:
            searches += [header, search_body(query, k, self.query_stopwords)]
        with self._requests(f"search index '{self.name}'"):
            responses = self.client.msearch(searches=searches)["responses"]
        ranked = []
        for query, response in zip(queries, responses):
            if "error" in response:
                error = response["error"]
                reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else error
                raise ElasticsearchBackendError(
                    f"Elasticsearch at {self.url}: a search of '{self.name}' failed ({self._clean(str(reason))})"
                )
            shards = response.get("_shards", {})
            if response.get("timed_out") or shards.get("failed", 0):
                raise ElasticsearchBackendError(
                    f"Elasticsearch at {self.url}: a search of '{self.name}' returned partial results "
                    f"({shards.get('failed', 0)} of {shards.get('total', '?')} shards failed, timed out: "
                    f"{bool(response.get('timed_out'))})"
                )
            ranked.append([int(hit["sort"][1]) for hit in response["hits"]["hits"]])
        return ranked

    def top_k(self, queries: Iterable[str], k: int = 10, workers: int = 1, progress: bool = False) -> list[list[int]]:
        """Ids of the ``k`` best texts for each query, best first, in ``_msearch`` batches."""
        if not self._ready:
            raise RuntimeError("the index is empty: call add() first")
        queries = list(queries)
        if k <= 0:
            return [[] for _ in queries]
        batches = [queries[i : i + MSEARCH_BATCH] for i in range(0, len(queries), MSEARCH_BATCH)]
        bar = tqdm(total=len(queries), desc="retrieve (Elasticsearch)", unit="query", disable=not progress)

        def run(batch: Sequence[str]) -> list[list[int]]:
            ranked = self._msearch(batch, k)
            bar.update(len(batch))
            return ranked

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = [ranked for batch in pool.map(run, batches) for ranked in batch]
        bar.close()
        return results

    def close(self) -> None:
        """Delete the run's temporary index (a named index is kept)."""
        if self._created and not self.keep:
            self._created = False
            with self._requests(f"delete index '{self.name}'"):
                self.client.indices.delete(index=self.name, ignore_unavailable=True)
