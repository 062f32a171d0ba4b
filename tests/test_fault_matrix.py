"""The faults of tests/test_bad_input.py met by every command: bad records, outputs that cannot be written,
missing or malformed data and configs, misspelled keys, interrupted runs, unfinished models, redaction.

Each cell: one line naming the file (and the record and field, where one is at fault), exit code 2, no
traceback, and no input or earlier result changed. Every refusal here comes before any model loads."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml
from test_bad_input import cli_error, probe_line, xsum_line

from memtasks.datafiles import DataFileError, parse_json_line
from memtasks.probes import read_texts
from memtasks.scoring import ProbeFileError, read_probes


def fingerprint(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` (or each root file) with the SHA-256 of its bytes, and every folder."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return found


# ----------------------------------------------------------------- records that lose their place (item 5)

LONG_ID = '{"id": ' + "7" * 5000 + ', "suffix": "s t u", "generation": "g h i"}'
SURROGATE_ID = '{"id": "p\\ud800", "suffix": "s t u", "generation": "g h i"}'
SURROGATE_GENERATION = '{"id": "q", "suffix": "s t u", "generation": "g h \\udfff i"}'

RECORDS = {
    "5,000-digit integer id": (LONG_ID, "field 'id': an integer of 5,000 digits, more than the 4,300 that can be read; write it as a string"),
    "lone surrogate in the id": (SURROGATE_ID, "field 'id': holds a lone surrogate (\\ud800)"),
    "lone surrogate in the generation": (SURROGATE_GENERATION, "field 'generation': holds a lone surrogate (\\udfff)"),
}


@pytest.mark.parametrize("case", RECORDS)
def test_score_names_file_line_and_field_of_a_record_it_cannot_hold(capsys, tmp_path, case):
    record, message = RECORDS[case]
    path = tmp_path / "probes.jsonl"
    path.write_text(probe_line(0) + "\n" + record + "\n" + probe_line(2) + "\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    with pytest.raises(ProbeFileError, match="^" + __import__("re").escape(f"{path}:2: {message}")):
        read_probes(path)
    cases = tmp_path / "cases.jsonl"
    line, out = cli_error(capsys, "score", path, "--cases", cases)
    assert line.startswith(f"memtasks score: error: {path}:2: {message}")
    assert out == "" and fingerprint(tmp_path) == before


def test_a_surrogate_pair_is_one_character_and_read():
    assert parse_json_line('{"id": "\\ud83d\\ude00"}', "f:1") == {"id": "\U0001f600"}
    # An escaped backslash before "ud800" is text, not an escape.
    assert parse_json_line('{"id": "\\\\ud800"}', "f:1") == {"id": "\\ud800"}


def test_a_lone_surrogate_in_a_key_or_a_nested_field_is_named(tmp_path):
    with pytest.raises(DataFileError, match=r"^f:3: key 'x\\ud800': holds a lone surrogate"):
        parse_json_line('{"x\\ud800": 1}', "f:3")
    with pytest.raises(DataFileError, match=r"^f:3: field 'a.b\[1\]': an integer of 4,301 digits"):
        parse_json_line('{"a": {"b": [1, ' + "9" * 4301 + "]}}", "f:3")
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "fine"}) + '\n{"text": "bad \\udc00"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{texts}:2: field 'text': holds a lone surrogate"):
        read_texts(texts)


def test_redact_without_cases_is_refused_before_any_work(capsys, tmp_path):
    path = tmp_path / "probes.jsonl"
    path.write_text(probe_line(0) + "\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    line, out = cli_error(capsys, "score", path, "--redact")
    assert line == "memtasks score: error: --redact applies to the cases file: give --cases FILE, or leave --redact out"
    assert out == "" and fingerprint(tmp_path) == before
