import pytest

from memtasks.probes import count_words, held_out, make_probes, split_prefix


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def test_split_prefix_cuts_at_the_kth_word_and_keeps_the_text():
    text = "One  two\tthree four\nfive six"
    prefix, suffix = split_prefix(text, 3)
    assert prefix == "One  two\tthree"
    assert suffix == "four\nfive six"
    # Only the whitespace at the cut belongs to neither side.
    assert text.startswith(prefix) and text.endswith(suffix)


def test_split_prefix_without_a_suffix_is_none():
    assert split_prefix(words(5), 5) is None
    assert split_prefix(words(5) + "   ", 5) is None
    assert split_prefix(words(3), 5) is None


def test_short_records_are_skipped_and_counted():
    records = [{"text": words(60)}, {"text": words(55)}, {"text": words(30)}, {"text": ""}]
    probe_set = make_probes(records, "text", prefix_tokens=50, min_suffix_tokens=10, n=None)
    assert probe_set.n_records == 4
    assert probe_set.n_too_short == 3
    assert [p.id for p in probe_set.probes] == ["0"]
    assert count_words(probe_set.probes[0].prefix) == 50
    assert count_words(probe_set.probes[0].suffix) == 10


def test_sampling_is_seeded_ordered_and_without_replacement():
    records = [{"text": words(70, stem=f"r{i}w"), "key": f"doc-{i}"} for i in range(200)]
    first = make_probes(records, "text", n=25, seed=7, id_field="key")
    again = make_probes(records, "text", n=25, seed=7, id_field="key")
    other = make_probes(records, "text", n=25, seed=8, id_field="key")
    ids = [p.id for p in first.probes]
    assert ids == [p.id for p in again.probes]
    assert ids != [p.id for p in other.probes]
    assert len(set(ids)) == 25
    assert ids == sorted(ids, key=lambda i: int(i.split("-")[1]))
    # n larger than the split takes the whole split.
    assert len(make_probes(records, "text", n=10_000).probes) == 200


def test_nested_field():
    records = [{"translation": {"en": words(30), "de": "x"}}]
    probe_set = make_probes(records, "translation.en", prefix_tokens=15, n=None)
    assert count_words(probe_set.probes[0].prefix) == 15


def test_missing_or_non_text_field_names_source_record_and_field():
    with pytest.raises(ValueError, match=r"data.jsonl: record 2: field 'document' is missing \(the record has text\)$"):
        make_probes([{"document": words(70)}, {"text": "x"}], "document", source="data.jsonl")
    with pytest.raises(ValueError, match=r"record 1: field 'document' must be text, got int"):
        make_probes([{"document": 3}], "document")
    # datasets gives a record that lacks a column None there: still a missing field, not a "NoneType".
    with pytest.raises(ValueError, match=r"data.jsonl: record 2: field 'document' is missing \(the record has no fields\)$"):
        make_probes([{"document": words(70)}, {"document": None}], "document", source="data.jsonl")


def test_repeated_inputs_are_probed_once_under_the_first_record():
    records = [{"text": words(70, "a")}, {"text": words(70, "b")}, {"text": words(70, "a")}, {"text": words(70, "a")}]
    probe_set = make_probes(records, "text", n=None)
    assert [p.id for p in probe_set.probes] == ["0", "1"]
    assert probe_set.n_duplicates == 2 and probe_set.n_records == 4


def test_the_held_out_slice_is_decided_by_the_text_alone():
    texts = [words(70, f"t{i}w") for i in range(4000)]
    share = sum(held_out(t, 0.2) for t in texts) / len(texts)
    assert 0.18 < share < 0.22
    assert [held_out(t, 0.2) for t in texts[:50]] == [held_out(t, 0.2) for t in texts[:50]]
    assert [held_out(t, 0.2, seed=1) for t in texts[:200]] != [held_out(t, 0.2) for t in texts[:200]]
    assert not any(held_out(t, 0.0) for t in texts[:200])
    with pytest.raises(ValueError, match="holdout must be at least 0 and below 1"):
        held_out("x", 1.0)


def test_keep_selects_records_and_counts_the_others():
    records = [{"text": words(70, f"r{i}w")} for i in range(10)]
    probe_set = make_probes(records, "text", n=None, keep=lambda text: text.startswith(("r1w", "r2w")))
    assert [p.id for p in probe_set.probes] == ["1", "2"]
    assert probe_set.n_excluded == 8
