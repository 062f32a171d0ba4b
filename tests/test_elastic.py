"""The Elasticsearch backend against a local stub server (tests/es_stub.py).

The official client talks over real sockets to an HTTP server in the test
process, so requests are built, serialized, sent, answered and parsed by the
client's own code. The tests check what is sent (mapping, bulk and msearch
bodies, authorization headers) and, for each fault a server or a proxy can
produce (refused connection, 401, 403, non-JSON or ill-shaped answers, fewer
responses than queries, hits without their sort values, a server that never
answers), that the run stops with one line naming the server and the request,
without a secret, and without a rate. No test here has run against a real
Elasticsearch server unless MEMTASKS_ES_URL names one (the others say so when
they skip).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from pathlib import Path

import pytest

elasticsearch = pytest.importorskip("elasticsearch", reason="the Elasticsearch client is not installed (pip install -e '.[es8]')")
from es_stub import HANG, Cluster, Reply, StubServer, free_port  # noqa: E402

from memtasks.retrieval import BM25Index, RetrievalSettings  # noqa: E402
from memtasks.retrieval.elastic import (  # noqa: E402
    QUERY_ANALYZER_STOP,
    ElasticsearchBackendError,
    ElasticsearchIndex,
    client_from_env,
    corpus_fingerprint,
    safe_url,
)
from memtasks.scoring import Probe, score_probes  # noqa: E402

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"
CLIENT_MAJOR = elasticsearch.__versionstr__.split(".")[0]
API_KEY = "c2VjcmV0LWFwaS1rZXktdmFsdWU="
PASSWORD = "hunter2-Pa55"


@pytest.fixture
def serve():
    """``serve(answer)`` starts a stub server for the test (a :class:`Cluster` of the client's major by default)."""
    servers = []

    def start(answer=None, **cluster) -> StubServer:
        server = StubServer(answer or Cluster(CLIENT_MAJOR, **cluster)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def quiet_secrets(caplog, capsys):
    """Checks at the end of a test that no secret reached the client's logs (at DEBUG) or the terminal."""
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capsys.readouterr()
    for secret in (API_KEY, PASSWORD):
        assert secret not in caplog.text and secret not in out and secret not in err


def make_index(server: StubServer | None = None, url: str | None = None, env: dict | None = None, **options) -> ElasticsearchIndex:
    return ElasticsearchIndex(env={"MEMTASKS_ES_URL": url or server.url, **(env or {})}, **options)


def failure(run, *secrets: str) -> str:
    """The message of the ElasticsearchBackendError ``run()`` raises: one line, without any of ``secrets``."""
    with pytest.raises(ElasticsearchBackendError) as error:
        run()
    message = str(error.value)
    assert "\n" not in message
    for secret in (API_KEY, PASSWORD, *secrets):
        assert secret not in message
    return message


def ready_index(server: StubServer, ids=(3, 7), **options) -> ElasticsearchIndex:
    index = make_index(server, **options)
    index.add(list(ids), [f"text {i}" for i in ids])
    return index


def test_index_has_an_explicit_mapping_one_shard_and_is_deleted_at_the_end(serve):
    server = serve()
    with make_index(server) as index:
        index.add([0, 1, 2], ["a cat sat", "a dog ran", "naïve café"])
        name = index.name
        assert name.startswith("memtasks-")
        create = server.sent("PUT", f"/{name}")[0].json()
        assert create["settings"]["number_of_shards"] == 1
        assert create["settings"]["similarity"]["memtasks_bm25"] == {"type": "BM25", "k1": 1.2, "b": 0.75, "discount_overlaps": True}
        mapping = create["mappings"]
        assert mapping["dynamic"] == "strict"
        assert mapping["properties"]["id"] == {"type": "long"}
        assert mapping["properties"]["text"]["analyzer"] == "standard"
        assert mapping["properties"]["text"]["similarity"] == "memtasks_bm25"
        assert mapping["_meta"]["memtasks"]["complete"] is False
        # Bulk body: one index action per document, the id as _id and as a sortable field.
        lines = server.sent("PUT", "/_bulk")[0].ndjson()
        assert lines[0] == {"index": {"_index": name, "_id": "0"}}
        assert lines[1] == {"id": 0, "text": "a cat sat"} and lines[5] == {"id": 2, "text": "naïve café"}
        # Refresh before search, the count checked, then the index marked complete.
        order = [(r.method, r.path) for r in server.requests]
        assert order.index(("POST", f"/{name}/_refresh")) < order.index(("POST", f"/{name}/_count"))
        meta = server.sent("PUT", f"/{name}/_mapping")[0].json()["_meta"]["memtasks"]
        assert meta["complete"] is True and meta["documents"] == 3
        assert server.answer.indexed == 3
    assert server.sent("DELETE", f"/{name}")


def test_msearch_bodies_sort_by_score_then_id(serve):
    server = serve()
    with ready_index(server) as index:
        assert index.top_k(["cat cat dog", "bird"], k=2) == [[7, 3], [7, 3]]
        assert index.top_k(["cat"], k=1) == [[7]]
    lines = server.sent("POST", "/_msearch")[0].ndjson()
    assert lines[0] == {"index": index.name}
    assert lines[1] == {
        "query": {"match": {"text": {"query": "cat cat dog"}}},
        "size": 2,
        "sort": [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}],
        "_source": False,
        "track_total_hits": False,
    }
    assert len(lines) == 4


def test_query_stopwords_use_the_index_stop_analyzer(serve):
    server = serve()
    with ready_index(server, query_stopwords=True) as index:
        index.top_k(["the cat"], k=10)
        create = server.sent("PUT", f"/{index.name}")[0].json()
    analyzer = create["settings"]["analysis"]["analyzer"][QUERY_ANALYZER_STOP]
    assert analyzer == {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "memtasks_stop"]}
    assert "the" in create["settings"]["analysis"]["filter"]["memtasks_stop"]["stopwords"]
    assert server.sent("POST", "/_msearch")[0].ndjson()[1]["query"]["match"]["text"]["analyzer"] == QUERY_ANALYZER_STOP


def test_msearch_batches_cover_every_query_in_order(serve):
    def numbered(request):
        # Each query's best hit is the document numbered like the query, so order is visible.
        searches = request.ndjson()[1::2]
        return 200, {"responses": [
            {"_shards": {"total": 1, "failed": 0}, "hits": {"hits": [{"_id": q, "sort": [1.0, int(q)]} for q in [s["query"]["match"]["text"]["query"]]]}}
            for s in searches
        ]}

    server = serve(overrides={("POST", "/_msearch"): numbered})
    with ready_index(server, ids=range(250)) as index:
        assert index.top_k([str(i) for i in range(250)], k=1, workers=2) == [[i] for i in range(250)]
    assert [len(r.ndjson()) // 2 for r in server.sent("POST", "/_msearch")] == [100, 100, 50]


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"MEMTASKS_ES_API_KEY": "abc:def"}, "ApiKey " + base64.b64encode(b"abc:def").decode()),
        ({"MEMTASKS_ES_API_KEY": "ZW5jb2RlZA=="}, "ApiKey ZW5jb2RlZA=="),
        ({"MEMTASKS_ES_USERNAME": "elastic", "MEMTASKS_ES_PASSWORD": "s3cret"}, "Basic " + base64.b64encode(b"elastic:s3cret").decode()),
    ],
)
def test_credentials_from_the_environment_become_authorization_headers(serve, env, expected):
    server = serve()
    make_index(server, env=env).check_server()
    assert server.requests[0].headers["authorization"] == expected


def test_ca_bundle_from_the_environment_is_used_for_tls(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read until a connection is made")
    client, _ = client_from_env(env={"MEMTASKS_ES_URL": "https://es.example:9200", "MEMTASKS_ES_CA_CERTS": str(bundle)})
    node = client.transport.node_pool.get()
    assert node.config.ca_certs == str(bundle) and node.config.verify_certs


def test_the_client_alone_neither_retries_nor_waits_past_the_deadline(serve):
    # Retries happen in ElasticsearchIndex, within each request's deadline; the
    # client's own (3 retries of 120 s by default) would stack on top of it.
    unavailable = serve(lambda request: (503, {"error": {"type": "unavailable", "reason": "busy"}}))
    client, _ = client_from_env(env={"MEMTASKS_ES_URL": unavailable.url})
    with pytest.raises(elasticsearch.ApiError):
        client.info()
    assert len(unavailable.requests) == 1
    silent = serve(lambda request: HANG)
    client, _ = client_from_env(env={"MEMTASKS_ES_URL": silent.url, "MEMTASKS_ES_TIMEOUT": "0.3"})
    started = time.monotonic()
    with pytest.raises(elasticsearch.ConnectionTimeout):
        client.info()
    assert time.monotonic() - started < 2 and len(silent.requests) == 1
    assert ElasticsearchIndex(env={"MEMTASKS_ES_URL": "http://localhost:9200"}).timeout == 30


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan", "inf"])
def test_a_bad_timeout_setting_is_one_clear_line(value):
    message = failure(lambda: ElasticsearchIndex(env={"MEMTASKS_ES_URL": "http://localhost:9200", "MEMTASKS_ES_TIMEOUT": value}))
    assert message == f"MEMTASKS_ES_TIMEOUT must be a number of seconds above 0, got {value!r}"


def test_missing_index_during_search_is_reported(serve):
    missing = (404, {"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}, "status": 404})
    server = serve(overrides={("POST", "/_msearch"): missing})
    with ready_index(server) as index:
        message = failure(lambda: index.top_k(["text"], k=1))
        assert f"{server.url}: index '{index.name}' does not exist" in message


def test_a_404_that_is_not_a_missing_index_points_at_the_url(serve):
    server = serve(lambda request: Reply(404, b"no handler found", {"Content-Type": "text/plain"}))
    message = failure(lambda: make_index(server).check_server())
    assert message.startswith(f"Elasticsearch at {server.url}: could not read the server version (HTTP 404")
    assert "check that MEMTASKS_ES_URL names the server's root" in message and "does not exist" not in message


def test_a_rejected_document_stops_the_run_and_removes_the_partial_index(serve):
    def bulk(request):
        actions = request.ndjson()[::2]
        return 200, {"errors": True, "items": [
            {"index": {"_id": a["index"]["_id"], "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}}
            for a in actions
        ]}

    server = serve(overrides={("PUT", "/_bulk"): bulk})
    index = make_index(server, index="corpus-xsum")

    def run():
        with index:
            index.add([0, 1], ["a", "b"])

    assert "document 0 was not indexed into 'corpus-xsum' (HTTP 400: bad)" in failure(run)
    assert server.sent("DELETE", "/corpus-xsum")  # a named index too: it would be partial


def test_documents_pushed_back_with_429_are_sent_again_alone(serve):
    calls = []

    def bulk(request):
        actions = request.ndjson()[::2]
        calls.append([a["index"]["_id"] for a in actions])
        busy = len(calls) == 1
        return 200, {"errors": busy, "items": [
            {"index": {"_id": a["index"]["_id"], "status": 429 if busy and a["index"]["_id"] == "2" else 201}} for a in actions
        ]}

    server = serve(overrides={("PUT", "/_bulk"): bulk, ("POST", "/_count"): (200, {"count": 3})})
    with make_index(server) as index:
        index.add([1, 2, 3], ["a", "b", "c"])
    assert calls == [["1", "2", "3"], ["2"]]


def test_partial_shard_results_are_an_error(serve):
    partial = (200, {"responses": [{"timed_out": False, "_shards": {"total": 2, "failed": 1}, "hits": {"hits": []}}]})
    server = serve(overrides={("POST", "/_msearch"): partial})
    with ready_index(server) as index:
        message = failure(lambda: index.top_k(["text"], k=1))
    assert "the search for query 1 of 1 returned partial results (1 of 2 shards failed" in message


def test_a_named_index_of_the_same_corpus_is_reused_and_kept(serve):
    ids, texts = [3, 7], ["a", "b"]
    meta = {"memtasks": {"schema": 1, "fingerprint": corpus_fingerprint(ids, texts), "documents": 2, "complete": True}}
    server = serve(
        overrides={
            ("GET", "/corpus-a/_mapping"): (200, {"corpus-a": {"mappings": {"_meta": meta}}}),
            ("GET", "/corpus-a/_settings"): (200, {"corpus-a": {"settings": {"index": {"number_of_shards": "3"}}}}),
            ("POST", "/corpus-a/_count"): (200, {"count": 2}),
        },
        existing={"corpus-a"},
    )
    with make_index(server, index="corpus-a") as index:
        index.add(ids, texts)
        assert index.top_k(["a"], k=2) == [[7, 3]]
    assert not server.sent("PUT", "/_bulk") and not server.sent("DELETE", "/corpus-a")
    # Three shards: term statistics are gathered from all of them first.
    assert server.sent("POST", "/_msearch")[0].ndjson()[0]["search_type"] == "dfs_query_then_fetch"

    assert "not built by memtasks from this corpus" in failure(lambda: make_index(server, index="corpus-a").add([3, 7], ["a", "changed"]))


def test_a_server_of_another_major_version_is_refused(serve):
    server = serve(overrides={("GET", "/"): (200, {"version": {"number": "7.17.0"}})})
    assert "version 7.17.0 but the installed client" in failure(lambda: make_index(server).check_server())
    assert "pip install 'memtasks[es7]'" in failure(lambda: make_index(server).check_server())


def test_safe_url_drops_credentials():
    assert safe_url("https://u:p@host:9243/prefix") == "https://host:9243/prefix"
    assert safe_url("http://localhost:9200") == "http://localhost:9200"


def test_backend_without_a_server_address_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MEMTASKS_ES_URL", raising=False)
    with pytest.raises(ElasticsearchBackendError, match="set MEMTASKS_ES_URL"):
        RetrievalSettings(backend="elasticsearch").open()


# The fault matrix: each fault ends in one line, names the server (and the
# request), prints no secret, and leaves no rate.


def echoing(status: int):
    """An error answer that quotes the credentials it was sent, raw and decoded (as a careless proxy might)."""

    def answer(request):
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        echoing.last = f"{scheme} {value} = {base64.b64decode(value).decode()}"
        return status, {"error": {"type": "security_exception", "reason": f"cannot accept {echoing.last}"}}

    return answer


def test_refused_connection_says_cannot_connect_at_once(quiet_secrets):
    port = free_port()
    index = make_index(url=f"http://elastic:{PASSWORD}@127.0.0.1:{port}", env={"MEMTASKS_ES_TIMEOUT": "20"})
    started = time.monotonic()
    message = failure(lambda: index.add([1], ["text"]))
    assert time.monotonic() - started < 5  # the first contact is not retried until the deadline
    expected = (
        rf"Elasticsearch at http://127\.0\.0\.1:{port}: cannot connect \(\[Errno \d+\] Connection refused\) while trying "
        r"to read the server version: check that the server is running and that MEMTASKS_ES_URL names it"
    )
    assert re.fullmatch(expected, message), message
    assert "MEMTASKS_ES_URL" in message and "0x" not in message and "elastic:" not in message


@pytest.mark.parametrize(
    "env, sent",
    [
        ({"MEMTASKS_ES_API_KEY": API_KEY}, "the API key in MEMTASKS_ES_API_KEY"),
        ({"MEMTASKS_ES_API_KEY": f"key-id:{PASSWORD}"}, "the API key in MEMTASKS_ES_API_KEY"),
        ({"MEMTASKS_ES_USERNAME": "elastic", "MEMTASKS_ES_PASSWORD": PASSWORD}, "MEMTASKS_ES_USERNAME and MEMTASKS_ES_PASSWORD"),
    ],
)
def test_rejected_credentials_are_one_line_without_the_secret(serve, quiet_secrets, env, sent):
    server = serve(overrides={("GET", "/"): echoing(401)})
    message = failure(lambda: make_index(server, env=env).add([1], ["text"]))
    assert PASSWORD in echoing.last or API_KEY in echoing.last  # the secret did reach the server
    assert message == (
        f"Elasticsearch at {server.url} rejected the credentials (HTTP 401, sent {sent}) while trying to read the server "
        "version: check MEMTASKS_ES_API_KEY, or MEMTASKS_ES_USERNAME and MEMTASKS_ES_PASSWORD"
    )


def test_credentials_in_the_url_stay_out_of_the_message(serve, quiet_secrets):
    server = serve(overrides={("GET", "/"): (401, {"error": {"type": "security_exception", "reason": "unable to authenticate"}})})
    url = server.url.replace("http://", f"http://elastic:{PASSWORD}@")
    message = failure(lambda: make_index(url=url).check_server(), "elastic:")
    assert f"Elasticsearch at {server.url} rejected the credentials (HTTP 401, sent the user name and password in MEMTASKS_ES_URL)" in message


def test_forbidden_names_the_privileges_without_the_secret(serve, quiet_secrets):
    server = serve(overrides={("PUT", ""): echoing(403)})
    index = make_index(server, env={"MEMTASKS_ES_API_KEY": f"key-id:{PASSWORD}"})
    message = failure(lambda: index.add([1], ["text"]), base64.b64encode(f"key-id:{PASSWORD}".encode()).decode())
    assert PASSWORD in echoing.last and "security_exception: cannot accept ApiKey *** = ***" in message
    assert message.startswith(f"Elasticsearch at {server.url}: the credentials (the API key in MEMTASKS_ES_API_KEY) may not create index")
    assert "HTTP 403" in message and f"create_index, write, read and delete_index on '{index.name}'" in message


def test_a_non_json_answer_is_reported_as_such_not_as_a_connection_failure(serve, quiet_secrets):
    garbage = Reply(200, b"<html><body>Welcome to nginx!</body></html>", {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"})
    server = serve(overrides={("GET", "/"): garbage})
    message = failure(lambda: make_index(server, env={"MEMTASKS_ES_API_KEY": API_KEY}).check_server())
    assert message.startswith(f"Elasticsearch at {server.url} answered with a body that is not JSON (")
    assert "Welcome to nginx" in message and "cannot connect" not in message
    assert "not a proxy or another service" in message


def test_a_proxy_page_instead_of_the_server_is_reported_as_not_json(serve):
    page = Reply(200, b"<html>\n<body>Sign in</body>\n</html>", {"Content-Type": "text/html"})
    server = serve(overrides={("GET", "/"): page})
    message = failure(lambda: make_index(server).check_server())
    assert message == (
        f"Elasticsearch at {server.url} answered HTTP 200 with text, not JSON ('<html> <body>Sign in</body> </html>') while "
        "trying to read the server version: check that MEMTASKS_ES_URL names an Elasticsearch server, not a proxy or another service"
    )


@pytest.mark.parametrize(
    "payload, problem",
    [
        ([{"responses": []}], "the body is a JSON list, not a JSON object with 'responses'"),
        ({"took": 3}, "no 'responses' in the answer"),
        ({"responses": {"0": {}}}, "'responses' is a JSON object, expected list"),
        ({"responses": [{"hits": {"hits": []}}]}, "1 responses for 2 queries"),
        ({"responses": [{"hits": {"hits": []}}] * 3}, "3 responses for 2 queries"),
        ({"responses": [{"hits": {"hits": []}}, ["not", "an", "object"]]}, "the response for query 2 of 2 is a JSON list, not a JSON object"),
        ({"responses": [{"hits": {"hits": []}}, {"took": 1}]}, "the response for query 2 of 2 has no hits.hits list"),
        ({"responses": [{"hits": {"hits": [{"_id": "7"}]}}] * 2}, "hit 1 of query 1 of 2 has no 'sort' [score, id] (got null)"),
        ({"responses": [{"hits": {"hits": [{"_id": "7", "sort": [2.5]}]}}] * 2}, "hit 1 of query 1 of 2 has no 'sort' [score, id] (got [2.5])"),
        ({"responses": [{"hits": {"hits": [{"sort": [2.5, 7]}]}}] * 2}, "hit 1 of query 1 of 2 has no '_id'"),
        ({"responses": [{"hits": {"hits": [{"_id": "3", "sort": [2.5, 7]}]}}] * 2}, "hit 1 of query 1 of 2 has _id '3' but sorts as document 7"),
        ({"responses": [{"hits": {"hits": [{"_id": "99", "sort": [2.5, 99]}]}}] * 2}, "hit 1 of query 1 of 2 is document 99, which was not indexed"),
        ({"responses": [{"hits": {"hits": [{"_id": "7", "sort": [2.5, 7]}] * 2}}] * 2}, "hit 2 of query 1 of 2 repeats document 7"),
        ({"responses": [{"hits": {"hits": [{"_id": "7", "sort": [2.5, 7]}, {"_id": "3", "sort": [1, 3]}, {"_id": "3", "sort": [1, 3]}]}}] * 2},
         "3 hits for query 1 of 2, more than the 2 asked for"),
    ],
)
def test_an_ill_shaped_msearch_answer_is_one_line_naming_the_request_and_query(serve, payload, problem):
    server = serve(overrides={("POST", "/_msearch"): (200, payload)})
    with ready_index(server) as index:
        message = failure(lambda: index.top_k(["a", "b"], k=2))
        assert message == (
            f"Elasticsearch at {server.url}: malformed answer while trying to search index '{index.name}' "
            f"(_msearch request 1 of 1, queries 1-2 of 2): {problem}"
        )


def test_an_error_object_for_one_query_fails_the_run_naming_that_query(serve):
    def one_fails(request):
        searches = request.ndjson()[1::2]
        ok = {"_shards": {"total": 1, "failed": 0}, "hits": {"hits": []}, "status": 200}
        bad = {"error": {"type": "too_many_clauses", "reason": "maxClauseCount is set to 1024"}, "status": 400}
        return 200, {"responses": [bad if len(searches) == 5 and i == 4 else ok for i in range(len(searches))]}

    server = serve(overrides={("POST", "/_msearch"): one_fails})
    with ready_index(server) as index:
        message = failure(lambda: index.top_k([f"q{i}" for i in range(105)], k=2))
    assert "the search for query 105 of 105 failed (HTTP 400, too_many_clauses: maxClauseCount is set to 1024)" in message
    assert "(_msearch request 2 of 2, queries 101-105 of 105)" in message


def test_fewer_responses_than_probes_stop_scoring_without_a_rate(serve, monkeypatch):
    # The case: 300 probes, 15 answers missing from one _msearch request.
    def short(request):
        searches = request.ndjson()[1::2]
        keep = len(searches) - 15 if len(searches) == 100 and short.calls == 1 else len(searches)
        short.calls += 1
        return 200, {"responses": [{"_shards": {"total": 1, "failed": 0}, "hits": {"hits": []}}] * keep}

    short.calls = 0
    server = serve(overrides={("POST", "/_msearch"): short})
    for name in ("MEMTASKS_ES_API_KEY", "MEMTASKS_ES_USERNAME", "MEMTASKS_ES_PASSWORD", "MEMTASKS_ES_CA_CERTS", "MEMTASKS_ES_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMTASKS_ES_URL", server.url)
    probes = [Probe(str(i), f"suffix number {i}", f"generation number {i}") for i in range(300)]
    message = failure(lambda: score_probes(probes, retrieval=RetrievalSettings("elasticsearch")))
    assert "(_msearch request 2 of 3, queries 101-200 of 300): 85 responses for 100 queries" in message
    assert [r for r in server.requests if r.method == "DELETE" and r.path.startswith("/memtasks-")]  # still removed


def test_a_server_that_never_answers_fails_at_the_deadline_with_how_to_change_it(serve):
    server = serve(overrides={("POST", "/_msearch"): HANG})
    index = ready_index(server, env={"MEMTASKS_ES_TIMEOUT": "0.5"})
    started = time.monotonic()
    with index:
        message = failure(lambda: index.top_k(["a"], k=1))
    assert time.monotonic() - started < 3
    assert message == (
        f"Elasticsearch at {server.url} did not answer within 0.5 s while trying to search index '{index.name}' "
        "(_msearch request 1 of 1, queries 1-1 of 1): check that the server is healthy and not overloaded, "
        "or allow each request more time with MEMTASKS_ES_TIMEOUT=<seconds> (now 0.5)"
    )
    assert server.sent("DELETE", f"/{index.name}")


def test_a_server_that_hangs_after_the_index_is_made_keeps_the_run_short_and_says_what_is_left(serve):
    server = serve(overrides={("POST", "/_msearch"): HANG, ("DELETE", ""): HANG})
    index = ready_index(server, env={"MEMTASKS_ES_TIMEOUT": "0.5"})

    def run():
        with index:
            index.top_k(["a"], k=1)

    started = time.monotonic()
    message = failure(run)
    assert time.monotonic() - started < 3  # the search's deadline, then a clean-up attempt as short
    assert message.startswith(f"Elasticsearch at {server.url} did not answer within 0.5 s while trying to search")
    assert message.endswith(f"(the temporary index '{index.name}' could not be deleted afterwards: delete it on the server)")


def test_a_hanging_first_contact_is_bounded_too(serve):
    server = serve(lambda request: HANG)
    started = time.monotonic()
    message = failure(lambda: make_index(server, env={"MEMTASKS_ES_TIMEOUT": "0.4"}).add([1], ["a"]))
    assert time.monotonic() - started < 3
    assert "did not answer within 0.4 s while trying to read the server version" in message


def test_transient_unavailability_is_retried_within_the_deadline(serve):
    answers = iter([(503, {"error": {"type": "unavailable", "reason": "busy"}}), Reply(502, b"Bad Gateway", {"Content-Type": "text/plain"})])

    def flaky(request):
        return next(answers, None) or Cluster(CLIENT_MAJOR)(request)

    server = serve(overrides={("POST", "/_msearch"): flaky})
    with ready_index(server, env={"MEMTASKS_ES_TIMEOUT": "5"}) as index:
        assert index.top_k(["a"], k=2) == [[7, 3]]
    assert len(server.sent("POST", "/_msearch")) == 3


def test_a_server_that_stays_unavailable_fails_at_the_deadline(serve):
    server = serve(overrides={("POST", "/_msearch"): (503, {"error": {"type": "unavailable", "reason": "no master"}})})
    with ready_index(server, env={"MEMTASKS_ES_TIMEOUT": "1"}) as index:
        started = time.monotonic()
        message = failure(lambda: index.top_k(["a"], k=2))
        assert time.monotonic() - started < 2
    attempts = len(server.sent("POST", "/_msearch"))
    assert attempts >= 2
    assert f"could not search index '{index.name}' (_msearch request 1 of 1, queries 1-1 of 1) (HTTP 503, unavailable: no master) after {attempts} attempts" in message


def test_a_failed_batch_stops_the_other_workers_batches(serve):
    def first_fails(request):
        searches = request.ndjson()[1::2]
        if searches[0]["query"]["match"]["text"]["query"] == "q0":
            return 200, []
        time.sleep(0.2)
        return 200, {"responses": [{"hits": {"hits": []}}] * len(searches)}

    server = serve(overrides={("POST", "/_msearch"): first_fails})
    with ready_index(server) as index:
        assert "the body is a JSON list" in failure(lambda: index.top_k([f"q{i}" for i in range(2000)], k=1, workers=2))
    assert len(server.sent("POST", "/_msearch")) < 20


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
