"""Bad input files, met through the library and through the command line: one line naming the
file and the line or record (and the field, where one is at fault), exit code 2, no traceback,
nothing written and nothing skipped. A UTF-8 byte order mark is read, not refused."""

from __future__ import annotations

import codecs
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from memtasks.cli import main
from memtasks.datafiles import MAX_DEPTH, DataFileError
from memtasks.finetune import task_examples
from memtasks.harness.hooks import load_probes
from memtasks.probes import read_texts
from memtasks.scoring import ProbeFileError, read_probes, score_probes
from memtasks.tasks import load_records, task_spec

BOM = codecs.BOM_UTF8


def words(n: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def xsum_line(i: int) -> str:
    return json.dumps({"document": words(80, f"d{i}w"), "summary": f"summary {i}"})


def probe_line(i: int) -> str:
    return json.dumps({"id": f"p{i}", "suffix": words(20, f"s{i}w"), "generation": words(20, f"g{i}w")})


def nested(depth: int) -> str:
    """A record whose field ``x`` holds arrays ``depth`` levels deep."""
    return '{"document": "a b c", "summary": "s", "x": ' + "[" * depth + "]" * depth + "}"


def lm_eval_handlers() -> list[logging.StreamHandler]:
    return [h for h in logging.getLogger("lm_eval").handlers if type(h) is logging.StreamHandler]


def cli_error(capsys, *argv) -> tuple[str, str]:
    """The one error line a refused command prints (exit code 2, no traceback), and its stdout."""
    # lm-eval's log handler, once made, keeps the stderr of the test that made it, closed
    # after that test: it writes to this one's while the command runs. Assigned, not set
    # with setStream, which would flush the closed stream.
    for handler in lm_eval_handlers():
        handler.stream = sys.stderr
    try:
        code = main([str(a) for a in argv])
    finally:
        out, err = capsys.readouterr()
        for handler in lm_eval_handlers():
            handler.stream = sys.__stderr__
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(f"memtasks {argv[0]}: ")]
    assert len(errors) == 1, err
    assert err.rstrip().endswith(errors[0])
    return errors[0], out


# --------------------------------------------------------------------------- memtasks score


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\r\n", BOM + b"\n"], ids=["empty", "blank", "bom-and-blank"])
def test_score_of_a_file_without_probes_is_one_line_and_writes_nothing(capsys, tmp_path, content):
    path = tmp_path / "probes.jsonl"
    path.write_bytes(content)
    with pytest.raises(ProbeFileError, match=f"^{re.escape(str(path))}: no probes"):
        read_probes(path)
    cases = tmp_path / "cases.jsonl"
    line, out = cli_error(capsys, "score", path, "--cases", cases)
    assert line == f"memtasks score: error: {path}: no probes (the file is empty or holds only blank lines)"
    assert out == "" and not cases.exists()


def test_scoring_no_probes_is_refused_before_any_index_is_built():
    with pytest.raises(ValueError, match="^no probes to score$"):
        score_probes([])


@pytest.mark.parametrize("depth", [100_000, 2_000])
def test_score_of_a_deeply_nested_line_names_file_and_line(capsys, tmp_path, depth):
    path = tmp_path / "probes.jsonl"
    deep = '{"id": "x", "suffix": "s", "generation": "g", "extra": ' + "[" * depth + "]" * depth + "}"
    path.write_text(probe_line(0) + "\n" + deep + "\n" + probe_line(2) + "\n", encoding="utf-8")
    with pytest.raises(ProbeFileError, match=re.escape(f"{path}:2: invalid JSON (nested too deeply to read)") + "$"):
        read_probes(path)
    line, _ = cli_error(capsys, "score", path)
    assert line == f"memtasks score: error: {path}:2: invalid JSON (nested too deeply to read)"


def test_score_input_with_a_byte_order_mark_is_read(tmp_path):
    lines = "".join(probe_line(i) + "\n" for i in range(3)).encode()
    plain, marked = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    plain.write_bytes(lines)
    marked.write_bytes(BOM + lines)
    assert read_probes(marked) == read_probes(plain)
    assert [p.id for p in read_probes(marked)] == ["p0", "p1", "p2"]


def test_a_byte_order_mark_after_the_start_is_an_error(tmp_path):
    path = tmp_path / "joined.jsonl"
    path.write_bytes(probe_line(0).encode() + b"\n" + BOM + probe_line(1).encode() + b"\n")
    with pytest.raises(ProbeFileError, match=f"^{re.escape(str(path))}:2: invalid JSON"):
        read_probes(path)


# --------------------------------------------------------------------------- data files of eval and finetune

# name -> (file name, content, what the message says after the task)
BAD_DATA = {
    "empty": ("train.jsonl", b"", "{path}: the file is empty (no records)"),
    "blank": ("train.jsonl", b"\n   \n\t\n", "{path}: holds no records"),
    "bom-only": ("train.jsonl", BOM, "{path}: holds no records"),
    "malformed line": (
        "train.jsonl", (xsum_line(0) + "\n\n" + '{"document": "a b", "summary": \n' + xsum_line(3) + "\n").encode(),
        "{path}:3: invalid JSON (Expecting value at column 32)",
    ),
    "not an object": ("train.jsonl", (xsum_line(0) + '\n["a", "b"]\n').encode(), "{path}:2: expected a JSON object (one record per line), got an array"),
    "too deep to parse": ("train.jsonl", (xsum_line(0) + "\n" + nested(100_000) + "\n").encode(), "{path}:2: invalid JSON (nested too deeply to read)"),
    "deeper than arrow takes": (
        "train.jsonl", (xsum_line(0) + "\n" + nested(MAX_DEPTH) + "\n").encode(), f"{{path}}:2: JSON nested too deeply (more than {MAX_DEPTH} levels)"
    ),
    "not utf-8": ("train.jsonl", (xsum_line(0) + "\n").encode() + b'{"document": "caf\xe9"}\n', "{path}:2: not valid UTF-8 (byte 17 of the line)"),
    "empty csv": ("train.csv", b"", "{path}: the file is empty (no records)"),
    "csv header only": ("train.csv", BOM + b"document,summary\n", "{path}: holds no records (a header and no rows)"),
    "empty json array": ("train.json", b"[\n]\n", "{path}: holds no records"),
    "json array item": ("train.json", ("[\n" + xsum_line(0) + ",\n 7\n]").encode(), "{path}: record 2: expected a JSON object, got a number"),
    "json document malformed": ("train.json", ("[\n" + xsum_line(0) + ",\n]").encode(), "{path}:3: invalid JSON (Expecting value at column 1)"),
}


def bad_data(tmp_path: Path, case: str) -> tuple[Path, str]:
    name, content, message = BAD_DATA[case]
    path = tmp_path / name
    path.write_bytes(content)
    return path, message.format(path=path)


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_are_refused_naming_file_and_line(tmp_path, case):
    path, message = bad_data(tmp_path, case)
    with pytest.raises(DataFileError) as caught:
        load_records(data_files=str(path), where="task t")
    assert str(caught.value) == f"task t: {message}"
    with pytest.raises(DataFileError) as caught:
        load_probes(data_files=str(path), input_field="document")
    assert str(caught.value).endswith(f": {message}") and str(path) in str(caught.value)
    with pytest.raises(DataFileError) as caught:
        task_examples(task_spec("mem_xsum"), data_files=str(path))
    assert str(caught.value).startswith("task mem_xsum") and str(caught.value).endswith(f": {message}")


@pytest.fixture
def no_model_loads(monkeypatch):
    """lm-eval's model loading, made to fail the test if a command reaches it."""
    import lm_eval.api.registry

    def load(name):
        pytest.fail(f"the model {name!r} was loaded before the refusal")

    monkeypatch.setattr(lm_eval.api.registry, "get_model", load)


def eval_refusal(capfd, *argv) -> str:
    """The whole stderr of a ``memtasks eval`` refused before any model loads: one line, nothing from another library."""
    code = main(["eval", "--model_args", "pretrained=unused", "--tasks", "mem_xsum", *argv])
    out, err = capfd.readouterr()
    assert code == 2 and out == "", err
    assert len(err.splitlines()) == 1, err
    return err.rstrip("\n")


@pytest.mark.parametrize("case", ["empty", "malformed line", "too deep to parse", "deeper than arrow takes"])
def test_eval_refuses_a_bad_data_file_in_one_line_before_any_model_loads(capfd, tmp_path, case, no_model_loads):
    path, message = bad_data(tmp_path, case)
    line = eval_refusal(capfd, "--metadata", json.dumps({"data_files": str(path)}))
    assert line == f"memtasks eval: error: --metadata data_files: {message}"


def test_eval_refuses_an_unknown_metadata_key_in_one_line_before_any_model_loads(capfd, no_model_loads):
    data = Path(__file__).resolve().parents[1] / "memtasks" / "demo_data" / "xsum_train.jsonl"
    line = eval_refusal(capfd, "--metadata", json.dumps({"data_files": str(data), "n_probe": 10}))
    assert line == "memtasks eval: error: task mem_xsum: unknown metadata key 'n_probe' (did you mean 'n_probes'?)"


def test_eval_refuses_a_record_without_the_input_field_before_any_model_loads(capfd, tmp_path, no_model_loads):
    path = tmp_path / "train.jsonl"
    path.write_text(xsum_line(0) + "\n" + json.dumps({"text": words(80, "w"), "summary": "s"}) + "\n", encoding="utf-8")
    line = eval_refusal(capfd, "--metadata", json.dumps({"data_files": str(path)}))
    assert line == f"memtasks eval: error: --metadata data_files: {path}:2: field 'document' is missing or null (the task's input_field)"


@pytest.mark.parametrize("case", ["empty", "blank", "malformed line", "too deep to parse", "not utf-8"])
def test_finetune_refuses_a_bad_data_file_in_one_line_and_leaves_nothing(capsys, tmp_path, case):
    path, message = bad_data(tmp_path, case)
    model, output = tmp_path / "model", tmp_path / "out"
    # The data is read before the model: an empty folder stands in for one.
    model.mkdir()
    line, out = cli_error(capsys, "finetune", "--task", "mem_xsum", "--model", model, "--output", output, "--data-files", path)
    assert line.startswith("memtasks finetune: error: task mem_xsum") and line.endswith(f": {message}")
    assert out == "" and not output.exists()


def test_a_bad_file_among_several_is_named(tmp_path):
    good, bad = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    good.write_text(xsum_line(0) + "\n", encoding="utf-8")
    bad.write_text(xsum_line(1) + "\n" + "{oops\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=f"^task t: {re.escape(str(bad))}:2: invalid JSON"):
        load_records(data_files=[str(good), str(bad)], where="task t")


def test_files_of_different_formats_are_refused(tmp_path):
    jsonl, csv = tmp_path / "a.jsonl", tmp_path / "b.csv"
    jsonl.write_text(xsum_line(0) + "\n", encoding="utf-8")
    csv.write_text("document,summary\na b,s\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mix formats"):
        load_records(data_files=[str(jsonl), str(csv)], where="task t")


def test_a_csv_row_with_too_many_fields_names_file_and_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("document,summary\na b,s\nc d,t,extra\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=f"^task t: cannot read {re.escape(str(path))}: .*line 3"):
        load_records(data_files=str(path), where="task t")


def test_a_csv_field_spanning_lines_is_one_record(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('document,summary\n"first line\n\nsecond, line",s\nplain,t\n', encoding="utf-8")
    records, _ = load_records(data_files=str(path))
    assert records.to_list() == [{"document": "first line\n\nsecond, line", "summary": "s"}, {"document": "plain", "summary": "t"}]


def test_records_nested_up_to_the_limit_are_read(tmp_path):
    path = tmp_path / "train.jsonl"
    # The record is one level, so its field may nest MAX_DEPTH - 1 more.
    path.write_text(xsum_line(0) + "\n" + nested(MAX_DEPTH - 1) + "\n", encoding="utf-8")
    records, _ = load_records(data_files=str(path))
    assert len(records) == 2


@pytest.mark.parametrize("name", ["train.jsonl", "train.json", "train.csv"])
def test_data_files_with_a_byte_order_mark_are_read(tmp_path, name):
    records = [{"document": words(80, f"d{i}w"), "summary": f"summary {i}"} for i in range(6)]
    if name.endswith(".csv"):
        text = "document,summary\n" + "".join(f"{r['document']},{r['summary']}\n" for r in records)
    elif name.endswith(".json"):
        text = json.dumps(records, indent=1)
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    plain, marked = tmp_path / "plain" / name, tmp_path / "marked" / name
    for path, prefix in ((plain, b""), (marked, BOM)):
        path.parent.mkdir()
        path.write_bytes(prefix + text.encode())
    loaded, _ = load_records(data_files=str(marked))
    assert loaded.column_names == ["document", "summary"]
    assert loaded.to_list() == records
    probed = {}
    for path in (plain, marked):
        rows = load_probes(data_files=str(path), input_field="document", n_probes=None)["test"]
        probed[path] = rows.select_columns(["id", "prefix", "suffix", "member"]).to_list()
    assert probed[marked] == probed[plain] and len(probed[marked]) == 6
    spec = task_spec("mem_xsum")
    assert task_examples(spec, data_files=str(marked)) == task_examples(spec, data_files=str(plain))


# --------------------------------------------------------------------------- records without their input


@pytest.mark.parametrize(
    "record, problem",
    [({"summary": "s"}, "field 'document' is missing (the record has summary)"), ({"document": 3, "summary": "s"}, "field 'document' must be text, got int")],
    ids=["missing", "not text"],
)
def test_a_record_without_a_text_input_names_file_record_and_field(capsys, tmp_path, record, problem):
    path = tmp_path / "train.jsonl"
    path.write_text(xsum_line(0) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    expected = re.escape(f"{path}:2: {problem}")
    with pytest.raises(ValueError, match=expected):
        load_probes(data_files=str(path), input_field="document", holdout=0)
    with pytest.raises(ValueError, match=expected):
        task_examples(task_spec("mem_xsum"), data_files=str(path), holdout=0.0)
    model = tmp_path / "model"
    model.mkdir()
    line, _ = cli_error(capsys, "finetune", "--task", "mem_xsum", "--model", model, "--output", tmp_path / "out", "--data-files", path)
    assert re.search(expected, line)


# --------------------------------------------------------------------------- tokenizer text of memtasks tiny-models


@pytest.mark.parametrize("name, content", [("text.txt", b""), ("text.txt", b"\n \n"), ("text.jsonl", BOM + b"\n")], ids=["empty", "blank", "bom-and-blank"])
def test_tiny_models_refuse_a_text_file_without_text_and_write_nothing(capsys, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    message = f"{path}: no texts (the file is empty or holds only blank lines)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        read_texts(path)
    models = tmp_path / "models"
    line, out = cli_error(capsys, "tiny-models", models, "--text", path)
    assert line == f"memtasks tiny-models: error: {message}"
    assert out == "" and not models.exists()


def test_tokenizer_text_with_a_byte_order_mark_is_read(tmp_path):
    plain, marked = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    lines = (json.dumps({"text": "first text"}) + "\n" + json.dumps({"text": "second"}) + "\n").encode()
    plain.write_bytes(lines)
    marked.write_bytes(BOM + lines)
    assert read_texts(marked) == read_texts(plain) == ["first text", "second"]
    deep = tmp_path / "deep.jsonl"
    deep.write_text(json.dumps({"text": "t"}) + '\n{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{re.escape(str(deep))}:2: invalid JSON \\(nested too deeply to read\\)$"):
        read_texts(deep)


@pytest.mark.parametrize("case", ["empty", "malformed line"])
def test_attention_refuses_a_bad_data_file_in_one_line_before_loading_the_model(capsys, tmp_path, case):
    path, message = bad_data(tmp_path, case)
    out = tmp_path / "attention"
    # A folder no loader could read a model from: the data is refused before any tries.
    (tmp_path / "unloadable-model").mkdir()
    line, _ = cli_error(
        capsys, "attention", "--model", "hf", "--model_args", f"pretrained={tmp_path / 'unloadable-model'}",
        "--tasks", "mem_xsum", "--data_files", f"mem_xsum={path}", "--device", "cpu", "--output_path", out,
    )
    assert line.startswith("memtasks attention: error: task mem_xsum") and line.endswith(f": {message}")
    assert not out.exists()
