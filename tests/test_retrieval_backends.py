"""Choosing the retrieval backend and search corpus: scoring, the lm-eval tasks and the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from memtasks.harness import hooks
from memtasks.cli import main
from memtasks.probes import DEFAULT_HOLDOUT, held_out
from memtasks.retrieval import BM25Index, RetrievalSettings
from memtasks.scoring import Probe, case_records, score_probes

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"


def records() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def test_query_stopwords_drop_stop_words_from_queries_only():
    docs = ["the the the the cat", "a dog of the hills", "the"]
    plain, stop = BM25Index(), BM25Index(query_stopwords=True)
    for index in (plain, stop):
        index.add(range(3), docs)
    assert sorted(plain.top_k(["the"], k=3)[0]) == [0, 1, 2]
    assert stop.top_k(["the"], k=3) == [[]]  # nothing left to search for
    assert stop.top_k(["the dog of"], k=3) == plain.top_k(["dog"], k=3) == [[1]]


def test_settings_validate_and_default_to_the_environment():
    assert RetrievalSettings.resolve(env={}).backend == "embedded"
    assert RetrievalSettings.resolve(env={"MEMTASKS_RETRIEVAL": "elasticsearch"}).backend == "elasticsearch"
    assert RetrievalSettings.resolve("embedded", env={"MEMTASKS_RETRIEVAL": "elasticsearch"}).backend == "embedded"
    with pytest.raises(ValueError, match="one of embedded, elasticsearch"):
        RetrievalSettings("solr")
    with pytest.raises(ValueError, match="lowercase"):
        RetrievalSettings("elasticsearch", es_index="Corpus")
    assert "password" not in json.dumps(RetrievalSettings("elasticsearch", es_index="x").to_dict())


def test_a_split_corpus_finds_training_text_that_is_not_a_probe():
    # The generation copies the suffix of a training record that was not drawn
    # as a probe: only an index of the whole split can find it.
    rows = records()[:40]
    unseen = rows[30]
    probes = [Probe(r["id"], r["suffix"], unseen["suffix"] if i == 0 else "unrelated words") for i, r in enumerate(rows[:10])]
    corpus = [(r["id"], r["suffix"]) for r in rows]
    alone = score_probes(probes)
    split = score_probes(probes, corpus=corpus)
    assert alone.outcomes[0].matched_id != unseen["id"]
    assert (split.outcomes[0].category, split.outcomes[0].matched_id) == ("verbatim", unseen["id"])
    assert split.retrieval == {"backend": "embedded", "query_stopwords": False, "es_index": None, "corpus_size": 40}
    case = case_records(probes, split.outcomes, corpus=corpus)[0]
    assert case["matched_id"] == unseen["id"]
    assert case["spans"][0]["suffix_text"] in unseen["suffix"]
    with pytest.raises(ValueError, match="duplicate ids"):
        score_probes(probes, corpus=corpus + corpus[:1])


def test_a_backend_failure_stops_scoring_before_any_rate(monkeypatch):
    monkeypatch.delenv("MEMTASKS_ES_URL", raising=False)
    probes = [Probe(r["id"], r["suffix"], r["generation"]) for r in records()[:5]]
    with pytest.raises(OSError, match="MEMTASKS_ES_URL"):
        score_probes(probes, retrieval=RetrievalSettings("elasticsearch"))


def _task_items(dataset, generations):
    return [hooks.process_results(doc, [gen])["mem_rate"] for doc, gen in zip(dataset, generations)]


def test_task_metadata_search_corpus_split_indexes_every_eligible_record(tmp_path):
    rows = records()[:60]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": r["suffix"], "uid": r["id"]}) + "\n" for r in rows), encoding="utf-8")
    options = dict(data_files=str(data), input_field="text", id_field="uid", prefix_tokens=8, n_probes=10, seed=3)
    probes_only = hooks.load_probes(**options)["test"]
    split = hooks.load_probes(**options, search_corpus="split")["test"]
    drawn = set(split["id"])
    # A member of the split that was not drawn: its suffix is only in the split's index.
    other = next(
        r for r in rows
        if r["id"] not in drawn and not held_out(r["suffix"], DEFAULT_HOLDOUT, seed=3) and len(r["suffix"].split()) > 40
    )
    other_suffix = other["suffix"].split(None, 8)[8]
    generations = [other_suffix] + ["unrelated words"] * (len(split) - 1)
    split_items = _task_items(split, generations)
    assert hooks.mem_rate(split_items) == pytest.approx(1 / sum(split["member"]))
    assert split_items[0].outcome.matched_id == other["id"]
    probe_items = _task_items(probes_only, generations)
    hooks.mem_rate(probe_items)
    assert probe_items[0].outcome.matched_id != other["id"]


def test_task_metadata_errors_name_the_task_source(tmp_path, monkeypatch):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"text": " ".join(["word"] * 80)}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl.*search_corpus.*'probes' or 'split'"):
        hooks.load_probes(data_files=str(data), search_corpus="everything")
    monkeypatch.delenv("MEMTASKS_ES_URL", raising=False)
    # An Elasticsearch task fails when its dataset loads, before any generation.
    with pytest.raises(OSError, match="set MEMTASKS_ES_URL"):
        hooks.load_probes(data_files=str(data), retrieval="elasticsearch")


def test_cli_elasticsearch_error_is_one_line_without_credentials(capsys, monkeypatch):
    pytest.importorskip("elasticsearch", reason="the Elasticsearch client is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MEMTASKS_ES_URL", f"http://admin:topsecret@127.0.0.1:{port}")
    assert main(["score", str(DATA), "--retrieval", "elasticsearch", "--json"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("memtasks score: error: Elasticsearch at http://127.0.0.1:")
    assert "topsecret" not in error and "\n" not in error


def test_a_saved_index_loads_with_the_same_ranking(tmp_path):
    rows = records()[:80]
    index = BM25Index()
    index.add([10 * i for i in range(len(rows))], [r["suffix"] for r in rows])
    index.save(tmp_path / "index")
    loaded = BM25Index.load(tmp_path / "index")
    queries = [r["generation"] for r in rows]
    assert loaded.top_k(queries, k=10) == index.top_k(queries, k=10)
    assert loaded.search(queries[0], 3) == index.search(queries[0], 3)
    with pytest.raises(RuntimeError, match="read-only"):
        loaded.add([1], ["more text"])
    with pytest.raises(OSError, match="not a memtasks BM25 index"):
        BM25Index.load(tmp_path / "nothing-here")
