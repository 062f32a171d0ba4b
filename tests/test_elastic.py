"""The Elasticsearch backend.

Request construction (mapping, bulk and msearch bodies, authentication
headers) and error handling are tested through the official client's own
transport layer: a node class that records the HTTP requests the client
serializes and answers them with canned server responses. No server is
faked beyond that; ranking on a real server is tested only when
MEMTASKS_ES_URL names one (the tests say so when they skip).
"""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path

import pytest

elasticsearch = pytest.importorskip("elasticsearch", reason="the Elasticsearch client is not installed (pip install -e '.[es8]')")
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders  # noqa: E402
from elastic_transport._node import NodeApiResponse  # noqa: E402

from memtasks.retrieval import BM25Index, RetrievalSettings  # noqa: E402
from memtasks.retrieval.elastic import (  # noqa: E402
    QUERY_ANALYZER_STOP,
    ElasticsearchBackendError,
    ElasticsearchIndex,
    client_from_env,
    safe_url,
)

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"
CLIENT_MAJOR = elasticsearch.__versionstr__.split(".")[0]


class RecordingNode(BaseNode):
    """A transport node that records each request and answers from ``RecordingNode.server``."""

    requests: list[dict] = []
    server = None

    def perform_request(self, method, target, body=None, headers=None, request_timeout=None):
        path, _, query = target.partition("?")
        request = {"method": method, "path": path, "query": query, "headers": dict(headers or {}), "body": body}
        RecordingNode.requests.append(request)
        status, payload = RecordingNode.server(request)
        meta = ApiResponseMeta(
            status=status,
            http_version="1.1",
            headers=HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
            duration=0.0,
            node=self.config,
        )
        return NodeApiResponse(meta, json.dumps(payload).encode())


def ndjson(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


class Cluster:
    """Canned answers of a healthy one-node cluster; ``overrides`` replace them per (method, path suffix)."""

    def __init__(self, overrides=None, existing=None):
        self.overrides = overrides or {}
        self.existing = existing or {}
        self.indexed = 0

    def __call__(self, request):
        method, path = request["method"], request["path"]
        for (m, suffix), answer in self.overrides.items():
            if m == method and path.endswith(suffix):
                return answer(request) if callable(answer) else answer
        if path == "/":
            return 200, {"version": {"number": f"{CLIENT_MAJOR}.15.0"}, "tagline": "You Know, for Search"}
        if method == "HEAD":
            return (200, {}) if path.strip("/") in self.existing else (404, {})
        if path == "/_bulk":
            items = ndjson(request["body"])[::2]
            self.indexed += len(items)
            return 200, {"errors": False, "items": [{"index": {"_id": a["index"]["_id"], "status": 201}} for a in items]}
        if path.endswith("/_count"):
            return 200, {"count": self.indexed}
        if path == "/_msearch":
            searches = ndjson(request["body"])[1::2]
            hits = [{"_id": "7", "sort": [2.5, 7]}, {"_id": "3", "sort": [1.0, 3]}]
            return 200, {"responses": [
                {"timed_out": False, "_shards": {"total": 1, "failed": 0}, "hits": {"hits": hits[: s["size"]]}} for s in searches
            ]}
        return 200, {"acknowledged": True}


@pytest.fixture
def cluster():
    RecordingNode.requests = []

    def install(server):
        RecordingNode.server = server
        return server

    return install


def make_index(url="http://localhost:9200", env=None, **options):
    env = {"MEMTASKS_ES_URL": url, **(env or {})}
    client, url = client_from_env(env=env, node_class=RecordingNode, max_retries=0)
    return ElasticsearchIndex(url, client=client, **options)


def sent(method, suffix):
    return [r for r in RecordingNode.requests if r["method"] == method and r["path"].endswith(suffix)]


def test_index_has_an_explicit_mapping_one_shard_and_is_deleted_at_the_end(cluster):
    server = cluster(Cluster())
    with make_index() as index:
        index.add([0, 1, 2], ["a cat sat", "a dog ran", "naïve café"])
        name = index.name
        assert name.startswith("memtasks-")
        create = json.loads(sent("PUT", f"/{name}")[0]["body"])
        assert create["settings"]["number_of_shards"] == 1
        assert create["settings"]["similarity"]["memtasks_bm25"] == {"type": "BM25", "k1": 1.2, "b": 0.75, "discount_overlaps": True}
        mapping = create["mappings"]
        assert mapping["dynamic"] == "strict"
        assert mapping["properties"]["id"] == {"type": "long"}
        assert mapping["properties"]["text"]["analyzer"] == "standard"
        assert mapping["properties"]["text"]["similarity"] == "memtasks_bm25"
        assert mapping["_meta"]["memtasks"]["complete"] is False
        # Bulk body: one index action per document, the id as _id and as a sortable field.
        lines = ndjson(sent("PUT", "/_bulk")[0]["body"])
        assert lines[0] == {"index": {"_index": name, "_id": "0"}}
        assert lines[1] == {"id": 0, "text": "a cat sat"} and lines[5] == {"id": 2, "text": "naïve café"}
        # Refresh before search, the count checked, then the index marked complete.
        order = [(r["method"], r["path"]) for r in RecordingNode.requests]
        assert order.index(("POST", f"/{name}/_refresh")) < order.index(("POST", f"/{name}/_count"))
        meta = json.loads(sent("PUT", f"/{name}/_mapping")[0]["body"])["_meta"]["memtasks"]
        assert meta["complete"] is True and meta["documents"] == 3
        assert server.indexed == 3
    assert sent("DELETE", f"/{name}")


def test_msearch_bodies_sort_by_score_then_id(cluster):
    cluster(Cluster())
    with make_index() as index:
        index.add([3, 7], ["x y", "y z"])
        assert index.top_k(["cat cat dog", "bird"], k=2) == [[7, 3], [7, 3]]
        assert index.top_k(["cat"], k=1) == [[7]]
    lines = ndjson(sent("POST", "/_msearch")[0]["body"])
    assert lines[0] == {"index": index.name}
    assert lines[1] == {
        "query": {"match": {"text": {"query": "cat cat dog"}}},
        "size": 2,
        "sort": [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}],
        "_source": False,
        "track_total_hits": False,
    }
    assert len(lines) == 4


def test_query_stopwords_use_the_index_stop_analyzer(cluster):
    cluster(Cluster())
    with make_index(query_stopwords=True) as index:
        index.add([1], ["text"])
        index.top_k(["the cat"], k=10)
        create = json.loads(sent("PUT", f"/{index.name}")[0]["body"])
    analyzer = create["settings"]["analysis"]["analyzer"][QUERY_ANALYZER_STOP]
    assert analyzer == {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "memtasks_stop"]}
    assert "the" in create["settings"]["analysis"]["filter"]["memtasks_stop"]["stopwords"]
    assert ndjson(sent("POST", "/_msearch")[0]["body"])[1]["query"]["match"]["text"]["analyzer"] == QUERY_ANALYZER_STOP


def test_msearch_batches_cover_every_query_in_order(cluster):
    cluster(Cluster())
    with make_index() as index:
        index.add([1], ["text"])
        assert len(index.top_k([f"query {i}" for i in range(250)], k=1, workers=2)) == 250
    assert [len(ndjson(r["body"])) // 2 for r in sent("POST", "/_msearch")] == [100, 100, 50]


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"MEMTASKS_ES_API_KEY": "abc:def"}, "ApiKey " + base64.b64encode(b"abc:def").decode()),
        ({"MEMTASKS_ES_API_KEY": "ZW5jb2RlZA=="}, "ApiKey ZW5jb2RlZA=="),
        ({"MEMTASKS_ES_USERNAME": "elastic", "MEMTASKS_ES_PASSWORD": "s3cret"}, "Basic " + base64.b64encode(b"elastic:s3cret").decode()),
    ],
)
def test_credentials_from_the_environment_become_authorization_headers(cluster, env, expected):
    cluster(Cluster())
    make_index(env=env).check_server()
    assert RecordingNode.requests[0]["headers"]["authorization"] == expected


def test_ca_bundle_from_the_environment_is_used_for_tls(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read until a connection is made")
    client, _ = client_from_env(env={"MEMTASKS_ES_URL": "https://es.example:9200", "MEMTASKS_ES_CA_CERTS": str(bundle)})
    node = client.transport.node_pool.get()
    assert node.config.ca_certs == str(bundle) and node.config.verify_certs


def test_auth_failure_is_one_line_naming_the_url_without_credentials(cluster):
    cluster(Cluster({("GET", "/"): (401, {"error": {"type": "security_exception", "reason": "unable to authenticate"}})}))
    index = make_index("http://elastic:hunter2@es.internal:9200", env={"MEMTASKS_ES_PASSWORD": "hunter2"})
    with pytest.raises(ElasticsearchBackendError) as error:
        index.add([1], ["text"])
    message = str(error.value)
    assert "http://es.internal:9200" in message and "hunter2" not in message and "elastic:" not in message
    assert "MEMTASKS_ES_API_KEY" in message and "\n" not in message


def test_connection_failure_names_the_url_and_what_to_check():
    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, url = client_from_env(env={"MEMTASKS_ES_URL": f"http://user:pw@127.0.0.1:{port}"}, max_retries=0)
    with pytest.raises(ElasticsearchBackendError) as error:
        ElasticsearchIndex(url, client=client).check_server()
    message = str(error.value)
    assert f"http://127.0.0.1:{port}" in message and "pw" not in message
    assert "cannot connect" in message and "MEMTASKS_ES_URL" in message


def test_missing_index_during_search_is_reported(cluster):
    missing = (404, {"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}, "status": 404})
    cluster(Cluster({("POST", "/_msearch"): missing}))
    with make_index() as index:
        index.add([1], ["text"])
        with pytest.raises(ElasticsearchBackendError, match=f"http://localhost:9200: index '{index.name}' does not exist"):
            index.top_k(["text"], k=1)


def test_a_rejected_document_stops_the_run_and_removes_the_partial_index(cluster):
    def bulk(request):
        items = ndjson(request["body"])[::2]
        return 200, {"errors": True, "items": [
            {"index": {"_id": a["index"]["_id"], "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}}
            for a in items
        ]}

    cluster(Cluster({("PUT", "/_bulk"): bulk}))
    index = make_index(index="corpus-xsum")
    with pytest.raises(ElasticsearchBackendError, match="document 0 was not indexed into 'corpus-xsum'"):
        with index:
            index.add([0, 1], ["a", "b"])
    assert sent("DELETE", "/corpus-xsum")  # a named index too: it would be partial


def test_partial_shard_results_are_an_error(cluster):
    partial = (200, {"responses": [{"timed_out": False, "_shards": {"total": 2, "failed": 1}, "hits": {"hits": []}}]})
    cluster(Cluster({("POST", "/_msearch"): partial}))
    with make_index() as index:
        index.add([1], ["text"])
        with pytest.raises(ElasticsearchBackendError, match="partial results"):
            index.top_k(["text"], k=1)


def test_a_named_index_of_the_same_corpus_is_reused_and_kept(cluster):
    probe = make_index(index="corpus-a")
    ids, texts = [1, 2], ["a", "b"]
    from memtasks.retrieval.elastic import corpus_fingerprint

    meta = {"memtasks": {"schema": 1, "fingerprint": corpus_fingerprint(ids, texts), "documents": 2, "complete": True}}
    server = Cluster(
        {
            ("GET", "/corpus-a/_mapping"): (200, {"corpus-a": {"mappings": {"_meta": meta}}}),
            ("GET", "/corpus-a/_settings"): (200, {"corpus-a": {"settings": {"index": {"number_of_shards": "3"}}}}),
        },
        existing={"corpus-a"},
    )
    server.indexed = 2
    cluster(server)
    with probe:
        probe.add(ids, texts)
        probe.top_k(["a"], k=1)
    assert not sent("PUT", "/_bulk") and not sent("DELETE", "/corpus-a")
    # Three shards: term statistics are gathered from all of them first.
    assert ndjson(sent("POST", "/_msearch")[0]["body"])[0]["search_type"] == "dfs_query_then_fetch"

    with pytest.raises(ElasticsearchBackendError, match="not built by memtasks from this corpus"):
        make_index(index="corpus-a").add([1, 2], ["a", "changed"])


def test_a_server_of_another_major_version_is_refused(cluster):
    cluster(Cluster({("GET", "/"): (200, {"version": {"number": "7.17.0"}})}))
    with pytest.raises(ElasticsearchBackendError, match=r"version 7\.17\.0 .*memtasks\[es7\]"):
        make_index().check_server()


def test_safe_url_drops_credentials():
    assert safe_url("https://u:p@host:9243/prefix") == "https://host:9243/prefix"
    assert safe_url("http://localhost:9200") == "http://localhost:9200"


def test_backend_without_a_server_address_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MEMTASKS_ES_URL", raising=False)
    with pytest.raises(ElasticsearchBackendError, match="set MEMTASKS_ES_URL"):
        RetrievalSettings(backend="elasticsearch").open()


REAL_SERVER = pytest.mark.skipif(
    not os.environ.get("MEMTASKS_ES_URL"),
    reason="no Elasticsearch server: set MEMTASKS_ES_URL (and MEMTASKS_ES_API_KEY or MEMTASKS_ES_USERNAME/PASSWORD) to run",
)


@REAL_SERVER
def test_real_server_ranks_as_the_embedded_index():
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    ids = [5 + 3 * i for i in range(len(records))]
    texts = [r["suffix"] for r in records]
    queries = [r["generation"] for r in records] + ["the the cat cat cat", "Don't stop: U.S. 3.5%"]
    embedded = BM25Index()
    embedded.add(ids, texts)
    with ElasticsearchIndex() as server:
        server.add(ids, texts)
        assert server.top_k(queries, k=10, workers=2) == embedded.top_k(queries, k=10)
        name = server.name
    assert not server.client.indices.exists(index=name)


@REAL_SERVER
def test_real_server_missing_index_error():
    index = ElasticsearchIndex()
    index._ready = True
    with pytest.raises(ElasticsearchBackendError, match="does not exist"):
        index.top_k(["anything"], k=1)


@REAL_SERVER
def test_real_server_query_stopwords_and_a_reused_named_index():
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()][:100]
    ids, texts = list(range(len(records))), [r["suffix"] for r in records]
    queries = [r["generation"] for r in records]
    embedded = BM25Index(query_stopwords=True)
    embedded.add(ids, texts)
    name = f"memtasks-test-{os.getpid()}"
    try:
        with ElasticsearchIndex(index=name, query_stopwords=True) as first:
            first.add(ids, texts)
            assert first.top_k(queries, k=10) == embedded.top_k(queries, k=10)
        with ElasticsearchIndex(index=name, query_stopwords=True) as again:
            again.add(ids, texts)  # reused: nothing is indexed again
            assert again.top_k(queries, k=10) == embedded.top_k(queries, k=10)
    finally:
        first.client.indices.delete(index=name, ignore_unavailable=True)
