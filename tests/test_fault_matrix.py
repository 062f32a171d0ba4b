"""The faults of tests/test_bad_input.py met by every command: bad records, outputs that cannot be written,
missing or malformed data and configs, misspelled keys, interrupted runs, unfinished models, redaction.

Each cell: one line naming the file (and the record and field, where one is at fault), exit code 2, no
traceback, and no input or earlier result changed. Every refusal here comes before any model loads."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_bad_input import cli_error, probe_line, xsum_line

import memtasks.demo
import memtasks.models
from memtasks.datafiles import DataFileError, count_records, parse_json_line
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
    with pytest.raises(ProbeFileError, match="^" + re.escape(f"{path}:2: {message}")):
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


@pytest.mark.parametrize("command", ["finetune", "eval"])
def test_a_lone_surrogate_in_a_data_file_is_one_line_naming_file_line_and_field(tmp_path, inputs, command):
    # In a process of its own: datasets' log line, which it printed before failing on the file, goes to
    # the real stderr, where capsys may not see it.
    data = inputs / "data" / "train.jsonl"
    data.write_text(xsum_line(0) + '\n{"document": "a \\ud800 b", "summary": "s"}\n' + xsum_line(2) + "\n", encoding="utf-8")
    argv = command_line(command, inputs, tmp_path / "out")
    if command == "eval":
        argv += ["--metadata", json.dumps({"data_files": str(data)})]
    before = fingerprint(tmp_path)
    done = subprocess.run([sys.executable, "-m", "memtasks.cli", *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{data}:2: field 'document': holds a lone surrogate (\\ud800)" in lines[0]
    assert fingerprint(tmp_path) == before


def test_a_lone_surrogate_in_a_json_document_names_the_record_and_field(tmp_path):
    document = tmp_path / "train.json"
    document.write_text('[{"document": "fine"},\n {"document": "x", "summary": ["a", "b \\udc00"]}]', encoding="utf-8")
    with pytest.raises(DataFileError, match=re.escape(f"{document}: record 2: field 'summary[1]': holds a lone surrogate (\\udc00)")):
        count_records(document)
    # A pair is one character, read as it is.
    document.write_text('{"document": "\\ud83d\\ude00"}', encoding="utf-8")
    assert count_records(document) == 1


def test_redact_without_cases_is_refused_before_any_work(capsys, tmp_path):
    path = tmp_path / "probes.jsonl"
    path.write_text(probe_line(0) + "\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    line, out = cli_error(capsys, "score", path, "--redact")
    assert line == "memtasks score: error: --redact applies to the cases file: give --cases FILE, or leave --redact out"
    assert out == "" and fingerprint(tmp_path) == before


# ------------------------------------------------------------------------- every command, every fault (item 6)

COMMANDS = ["score", "eval", "finetune", "study", "demo", "attention", "attention --plot", "report", "models get"]


def never(*args, **kwargs):
    raise AssertionError("the command started its work")


@pytest.fixture
def inputs(tmp_path, monkeypatch) -> Path:
    """A folder of every command's inputs: probes, a data file, a local model folder, a results folder, a
    model package's file; a tripwire on the demo's and models get's first step of work."""
    root = tmp_path / "inputs"
    (root / "data").mkdir(parents=True)
    (root / "probes.jsonl").write_text("".join(probe_line(i) + "\n" for i in range(3)), encoding="utf-8")
    (root / "data" / "train.jsonl").write_text("".join(xsum_line(i) + "\n" for i in range(4)), encoding="utf-8")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text(json.dumps({"model_type": "t5"}), encoding="utf-8")
    (root / "results").mkdir()
    (root / "results" / "results_2024.json").write_text("{}", encoding="utf-8")
    (root / "package").mkdir()
    (root / "package" / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(memtasks.demo, "_write_data", never)
    monkeypatch.setattr(memtasks.models, "gguf_path", lambda model: root / "package" / "model.gguf")
    monkeypatch.setattr(memtasks.models, "_convert", never)
    return root


def command_line(command: str, root: Path, out: Path, model: Path | None = None) -> list:
    """``command`` run on the inputs in ``root``, writing to ``out`` (a folder that may not exist)."""
    model = model or root / "model"
    data = root / "data" / "train.jsonl"
    if command == "study":
        config = root / "study.yaml"
        config.write_text(
            yaml.safe_dump(
                {"name": "s", "output_dir": str(out / "study"), "models": [{"name": "m", "path": str(model)}],
                 "tasks": ["mem_xsum"], "data_files": {"mem_xsum": str(data)}}
            ),
            encoding="utf-8",
        )
        return ["study", config]
    attention = ["attention", "--model_args", f"pretrained={model}", "--tasks", "mem_xsum", "--data_files", f"mem_xsum={data}", "--device", "cpu"]
    return {
        "score": ["score", root / "probes.jsonl", "--cases", out / "cases.jsonl"],
        "eval": ["eval", "--model_args", f"pretrained={model}", "--tasks", "mem_xsum", "--output_path", out / "results"],
        "finetune": ["finetune", "--task", "mem_xsum", "--model", model, "--data-files", data, "--output", out / "tuned", "--device", "cpu"],
        "demo": ["demo", "--tiny", "--out", out / "demo"],
        "attention": [*attention, "--output_path", out / "results"],
        "attention --plot": [*attention, "--output_path", root / "attention-results", "--plot", out / "plots"],
        "report": ["report", root / "results", "--out", out / "report"],
        "models get": ["models", "get", "smollm2-135m", out / "smollm2"],
    }[command]


def refused(capsys, argv: list) -> str:
    return cli_error(capsys, *argv)[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_one_line_before_any_work(capsys, tmp_path, inputs, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    argv = command_line(command, inputs, blocker)
    before = fingerprint(tmp_path)
    line = refused(capsys, argv)
    assert f"{blocker.name} is a file, not a folder" in line
    assert fingerprint(tmp_path) == before


@pytest.fixture
def mounted(tmp_path):
    """Mount a 16 KiB tmpfs: ``mounted("ro")`` read-only, ``mounted("full")`` filled to the last byte."""
    points = []

    def mount(kind: str) -> Path:
        point = tmp_path / f"mount-{kind}"
        point.mkdir()
        options = "size=16k" + (",ro" if kind == "ro" else "")
        if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("mounting a small file system needs root")
        points.append(point)
        if kind == "full":
            with (point / "filler").open("wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 4096)
                except OSError:
                    pass
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.parametrize("kind, reason", [("ro", "read-only file system"), ("full", "no space left on device")], ids=["read-only", "full"])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_or_full_output_location_is_one_line_before_any_work(capsys, tmp_path, inputs, mounted, command, kind, reason):
    point = mounted(kind)
    argv = command_line(command, inputs, point)
    before = fingerprint(inputs)
    line = refused(capsys, argv)
    assert line.endswith(f"cannot write in {point} ({reason})"), line
    assert fingerprint(inputs) == before
    assert sorted(p.name for p in point.iterdir()) == (["filler"] if kind == "full" else [])


def unfinished(folder: Path) -> Path:
    """A model folder a fine-tuning left when it was interrupted: a checkpoint, a summary saying complete: false."""
    (folder / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-4" / "config.json").write_text(json.dumps({"model_type": "t5"}), encoding="utf-8")
    summary = {"memtasks": "finetune", "complete": False, "config": {}, "stopped": {"reason": "interrupted", "resume_from_step": 4}}
    (folder / "memtasks_finetune.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


@pytest.mark.parametrize("command", ["finetune", "study", "attention", "attention --plot", "eval"])
def test_a_model_folder_of_an_unfinished_fine_tuning_is_refused_before_it_loads(capsys, tmp_path, inputs, command):
    model = unfinished(tmp_path / "tuned-halfway")
    out = tmp_path / "out"
    argv = command_line(command, inputs, out, model=model)
    before = fingerprint(tmp_path)
    line = refused(capsys, argv)
    assert "holds an unfinished fine-tuning run (complete: false)" in line and "tuned-halfway" in line
    assert fingerprint(tmp_path) == before and not out.exists()


def test_a_misspelled_metadata_key_of_memtasks_attention_is_an_error(capsys, tmp_path, inputs):
    argv = [*command_line("attention", inputs, tmp_path / "out"), "--metadata", json.dumps({"mem_xsum": {"inptu_field": "document"}})]
    line = refused(capsys, argv)
    assert line == "memtasks attention: error: --metadata of task mem_xsum: unknown metadata key 'inptu_field' (did you mean 'input_field'?)"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "section, message",
    [
        ({"evaluate": {"metadata": {"n_probe": 50}}}, "evaluate.metadata: unknown metadata key 'n_probe' (did you mean 'n_probes'?)"),
        ({"evaluate": {"metadata": ["n_probes"]}}, "'evaluate.metadata' must be a mapping"),
    ],
    ids=["misspelled", "not a mapping"],
)
def test_a_study_configs_evaluation_metadata_is_checked_before_any_step(capsys, tmp_path, inputs, section, message):
    config = command_line("study", inputs, tmp_path / "out")[1]
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text(encoding="utf-8")), **section}), encoding="utf-8")
    before = fingerprint(tmp_path)
    line = refused(capsys, ["study", config])
    assert line == f"memtasks study: error: {config}: {message}"
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("stranger", ["notes.txt", "study.yaml"])
def test_demo_resume_never_rewrites_a_folder_it_did_not_write(capsys, tmp_path, inputs, stranger):
    """--resume finishes an earlier demo run; pointed at another folder (another study's, say), it would
    rewrite that folder's study.yaml and summary.md."""
    folder = tmp_path / "my-study"
    folder.mkdir()
    (folder / stranger).write_text("name: mine\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    line = refused(capsys, ["demo", "--tiny", "--resume", "--out", folder])
    if stranger == "notes.txt":
        assert line.startswith(f"memtasks demo: error: {folder} holds files no demo run wrote (notes.txt): ")
    else:
        assert line == f"memtasks demo: error: {folder / 'study.yaml'} is not the demo's study config: --resume finishes an earlier demo run only"
    assert fingerprint(tmp_path) == before


def test_a_report_skips_the_results_a_stopped_run_left_in_its_partial_folder(tmp_path):
    """A study or demo step killed before it could clean up leaves lm-eval's results in runs/STEP.partial:
    they were never finished, and a report that counted them would show a run that looks complete."""
    from test_report import metrics, write_results

    from memtasks.report import build_report

    results = tmp_path / "results"
    done = write_results(results / "runs" / "m__mem_xsum", {"pretrained": "org/m"}, {"mem_xsum": metrics((0.25, 0.2, 0.3))})
    write_results(results / "runs" / "n__mem_xsum.partial", {"pretrained": "org/n"}, {"mem_xsum": metrics((0.5, 0.4, 0.6))})
    before = fingerprint(results)
    report = build_report(results, tmp_path / "report")
    assert [run.path for run in report.runs] == [done]
    assert report.warnings == [f"{results / 'runs' / 'n__mem_xsum.partial'}: skipped, an unfinished run (a .partial folder a stopped run left)"]
    assert fingerprint(results) == before


def test_tiny_models_refuse_a_model_folder_over_their_text(capsys, tmp_path):
    text = tmp_path / "models" / "tiny-decoder" / "text.jsonl"
    text.parent.mkdir(parents=True)
    text.write_text(json.dumps({"text": "some words to train on"}) + "\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    line, out = cli_error(capsys, "tiny-models", tmp_path / "models", "--text", text)
    assert line == (
        f"memtasks tiny-models: error: the model folder {text.parent} holds --text {text}: "
        "an output never writes over an input; choose another output path"
    )
    assert out == "" and fingerprint(tmp_path) == before


def test_a_study_config_that_is_not_utf8_names_the_file(capsys, tmp_path):
    config = tmp_path / "study.yaml"
    config.write_bytes(b"name: s\n\xff\xfe")
    line, _ = cli_error(capsys, "study", config)
    assert line == f"memtasks study: error: {config}: not UTF-8 text (byte 8)"


def test_a_report_of_a_file_names_it_not_the_report_folder(capsys, tmp_path):
    results = tmp_path / "results.json"
    results.write_text("{}")
    line, _ = cli_error(capsys, "report", results)
    assert line == f"memtasks report: error: {results}: not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


# ------------------------------------------------------------------------------ interrupted runs, resumed


def imdb_data(inputs: Path) -> Path:
    """Reviews as mem_imdb reads them (its text in "text"), beside the XSum records of ``inputs``."""
    path = inputs / "data" / "imdb.jsonl"
    path.write_text("".join(json.dumps({"text": json.loads(xsum_line(i))["document"], "label": 1}) + "\n" for i in range(4)), encoding="utf-8")
    return path


def test_a_study_killed_in_a_probe_resumes_it_and_keeps_every_earlier_result(tmp_path, inputs, monkeypatch):
    """A probe killed before it cleaned up leaves runs/STEP.partial and no manifest entry: the study run
    again redoes that step only, and every earlier result stays byte for byte."""
    from memtasks.study import read_study_config, run_study

    monkeypatch.chdir(tmp_path)
    config_path = inputs / "study.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {"name": "s", "output_dir": str(tmp_path / "study"), "models": [{"name": "m", "path": str(inputs / "model")}],
             "tasks": ["mem_imdb"], "data_files": {"mem_imdb": str(imdb_data(inputs))},
             "finetune": {"mixtures": []}, "evaluate": {"variants": ["prefix10"]}}
        ),
        encoding="utf-8",
    )
    config = read_study_config(config_path)
    ran = []

    def evaluate(arguments):
        task = arguments[arguments.index("--tasks") + 1]
        folder = Path(arguments[arguments.index("--output_path") + 1]).parent
        ran.append(task)
        if task == "mem_imdb_prefix10" and len(ran) == 2:
            (folder / "results_2026-01-01.json").write_text("{}")
            raise KeyboardInterrupt  # killed mid-step (its cleanup is undone below)
        (folder / "results_2026-01-01.json").write_text(json.dumps({"results": {task: {}}}))
        (folder / f"samples_{task}_2026-01-01.jsonl").write_text("{}\n")
        return 0

    with pytest.raises(KeyboardInterrupt):
        run_study(config, log=lambda _: None, evaluate=evaluate)
    # A kill, unlike an interrupt, leaves the step's partial folder behind.
    partial = tmp_path / "study" / "runs" / "m__pretrained__mem_imdb_prefix10.partial"
    partial.mkdir()
    (partial / "results_2026-01-01.json").write_text("{}")
    earlier = fingerprint(tmp_path / "study" / "runs" / "m__pretrained__mem_imdb")
    manifest = run_study(config, log=lambda _: None, evaluate=evaluate)
    assert ran == ["mem_imdb", "mem_imdb_prefix10", "mem_imdb_prefix10"]
    assert [step.id for step in manifest.evals()] == ["m/pretrained/mem_imdb", "m/pretrained/mem_imdb_prefix10"]
    assert fingerprint(tmp_path / "study" / "runs" / "m__pretrained__mem_imdb") == earlier
    assert not partial.exists()


def test_finetune_into_an_unfinished_run_of_another_config_is_one_line_and_keeps_it(capsys, tmp_path, inputs):
    out = unfinished(tmp_path / "tuned")
    before = fingerprint(tmp_path)
    line = refused(capsys, command_line("finetune", inputs, tmp_path)[:-2] + ["--device", "cpu", "--epochs", "5"])
    assert line.startswith(f"memtasks finetune: error: {out} holds another run (it differs in ")
    assert fingerprint(tmp_path) == before


def test_score_refuses_a_cases_path_that_is_a_folder_before_scoring(capsys, tmp_path, inputs):
    folder = tmp_path / "cases"
    folder.mkdir()
    before = fingerprint(tmp_path)
    line = refused(capsys, ["score", inputs / "probes.jsonl", "--cases", folder])
    assert line == f"memtasks score: error: --cases {folder} is a folder: give the path of the file to write"
    assert fingerprint(tmp_path) == before


# ------------------------------------------------------------------ a nearly full disk: every command that writes

DEMO_DATA = Path(memtasks.demo.__file__).parent / "demo_data"
PNG_END = b"IEND\xaeB`\x82"


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(free_kib)``: a 16 MiB tmpfs filled to leave about ``free_kib`` KiB; removing its ``filler``
    frees the disk. Skipped where the test cannot mount one (mounting needs root; CI runs as root)."""
    points = []

    def mount(free_kib: int, holding: Path | None = None) -> Path:
        """``holding``, a folder, is copied onto the disk before it is filled."""
        point = tmp_path / "disk"
        point.mkdir()
        if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("mounting a small file system needs root")
        points.append(point)
        if holding is not None:
            shutil.copytree(holding, point / holding.name)
        stats = os.statvfs(point)
        (point / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - free_kib * 1024))
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], capture_output=True)


def assert_nothing_cut(folder: Path) -> None:
    """Every file a command left is whole: no temporary or partial file, every JSON and JSON Lines file parses,
    every PNG ends with its end chunk, every safetensors file loads."""
    from safetensors import safe_open

    for path in folder.rglob("*"):
        if path.is_dir() or path.name == "filler":
            assert not path.name.endswith(".partial"), path
            continue
        assert not path.name.endswith(".tmp"), path
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(PNG_END), path
        elif path.suffix == ".safetensors":
            with safe_open(path, "pt") as weights:
                assert list(weights.keys()), path


def run_cli(*argv) -> tuple[int, str]:
    """A command in a process of its own: its exit status and its last line on stderr, after checking it
    printed no traceback."""
    done = subprocess.run([sys.executable, "-m", "memtasks.cli", *map(str, argv)], capture_output=True, text=True, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def assert_full_disk_line(code: int, line: str, command: str, folder: Path) -> None:
    assert code == 2, line
    assert line.startswith(f"memtasks {command}: error: {folder}") and "no space left on device" in line, line


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny decoder and encoder-decoder, and 16 XSum records to probe and train on."""
    from memtasks.tiny import build_tiny_model, train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    records = [json.loads(line) for line in (DEMO_DATA / "xsum_train.jsonl").read_text(encoding="utf-8").splitlines()[:16]]
    data = root / "xsum.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tokenizer = train_tokenizer([r["document"] for r in records] + [r["summary"] for r in records], vocab_size=600)
    return {"data": data, **{kind: build_tiny_model(kind, tokenizer, root / kind) for kind in ("decoder", "seq2seq")}}


def eval_arguments(tiny, output: Path) -> list:
    metadata = json.dumps({"data_files": str(tiny["data"]), "n_probes": 8})
    return ["eval", "--model_args", f"pretrained={tiny['decoder']}", "--tasks", "mem_xsum", "--device", "cpu",
            "--metadata", metadata, "--output_path", output, "--log_samples"]


@pytest.fixture(scope="module")
def finished_run(tiny, tmp_path_factory) -> Path:
    """The folder of a finished ``memtasks eval --log_samples`` run on the tiny decoder."""
    out = tmp_path_factory.mktemp("finished-run")
    code, line = run_cli(*eval_arguments(tiny, out))
    assert code == 0, line
    return next(out.rglob("results_*.json")).parent


def test_eval_on_a_full_disk_exits_2_naming_the_file_and_leaves_no_results(tiny, small_disk):
    """lm-eval's writer logged a failed write as a warning: the run exited 0 with a results file cut at
    20,480 bytes and an empty samples log."""
    disk = small_disk(64)
    code, line = run_cli(*eval_arguments(tiny, disk / "ev"))
    assert_full_disk_line(code, line, "eval", disk / "ev")
    assert_nothing_cut(disk)
    assert not list(disk.rglob("results_*.json")) and not list(disk.rglob("samples_*.jsonl"))


def test_a_study_on_a_full_disk_adopts_nothing_and_resumed_finishes_and_rescores(tiny, small_disk):
    disk = small_disk(64)
    config = disk.parent / "study.yaml"
    config.write_text(yaml.safe_dump({
        "name": "s", "output_dir": str(disk / "study"), "models": [{"name": "m", "path": str(tiny["decoder"])}],
        "tasks": ["mem_xsum"], "data_files": {"mem_xsum": str(tiny["data"])}, "finetune": {"mixtures": []},
        "evaluate": {"metadata": {"n_probes": 8}, "lm_eval_args": ["--device", "cpu"]},
    }), encoding="utf-8")
    code, line = run_cli("study", config)
    assert_full_disk_line(code, line, "study", disk / "study")
    assert_nothing_cut(disk)
    assert not (disk / "study" / "runs" / "m__pretrained__mem_xsum").exists()
    (disk / "filler").unlink()
    assert run_cli("study", config)[0] == 0
    runs = disk / "study" / "runs" / "m__pretrained__mem_xsum"
    assert len(list(runs.glob("results_*.json"))) == 1 and len(list(runs.glob("samples_*.jsonl"))) == 1
    assert run_cli("rescore", disk / "study")[0] == 0


def test_finetune_on_a_full_disk_is_one_line_and_a_stopped_entry_and_resumes_once_freed(tiny, small_disk):
    disk = small_disk(256)
    out = disk / "ft"
    argv = ["finetune", "--task", "mem_xsum", "--model", tiny["decoder"], "--data-files", tiny["data"], "--output", out,
            "--device", "cpu", "--epochs", "1", "--batch-size", "8"]
    code, line = run_cli(*argv)
    assert_full_disk_line(code, line, "finetune", out)
    assert "free some space and run the same command again" in line
    summary = json.loads((out / "memtasks_finetune.json").read_text(encoding="utf-8"))
    assert summary["complete"] is False and summary["stopped"]["reason"] == "no space left on device"
    assert_nothing_cut(disk)
    (disk / "filler").unlink()
    assert run_cli(*argv)[0] == 0
    assert json.loads((out / "memtasks_finetune.json").read_text(encoding="utf-8"))["complete"] is True
    assert_nothing_cut(disk)


def test_report_on_a_full_disk_names_the_figure_and_leaves_no_cut_png(tmp_path, small_disk):
    from test_report import metrics, write_results

    results = tmp_path / "results"
    for i, model in enumerate(("org/a", "org/b", "org/c")):
        write_results(results / model.replace("/", "__"), {"pretrained": model}, {"mem_xsum": metrics((0.1 * i, 0.0, 0.3))})
    disk = small_disk(24)
    code, line = run_cli("report", results, "--out", disk / "rep")
    assert_full_disk_line(code, line, "report", disk / "rep")
    assert_nothing_cut(disk)


def test_attention_on_a_full_disk_names_the_file(tiny, small_disk):
    disk = small_disk(8)
    code, line = run_cli(
        "attention", "--model_args", f"pretrained={tiny['seq2seq']}", "--tasks", "mem_xsum", "--data_files", f"mem_xsum={tiny['data']}",
        "--device", "cpu", "--samples", "4", "--output_path", disk / "att", "--plot", disk / "plots",
    )
    assert code == 2 and line.startswith(f"memtasks attention: error: {disk}") and "no space left on device" in line, line
    assert_nothing_cut(disk)


def test_tiny_models_on_a_full_disk_leave_no_folder_of_cut_weights(small_disk):
    disk = small_disk(256)
    code, line = run_cli("tiny-models", disk / "tiny", "--text", DEMO_DATA / "xsum_train.jsonl", "--field", "document")
    assert line == f"memtasks tiny-models: error: {disk / 'tiny' / 'tiny-decoder'}: no space left on device while writing the model"
    assert code == 2 and not list((disk / "tiny").iterdir())


def test_rescore_on_a_full_disk_leaves_the_run_as_it_was(finished_run, small_disk):
    disk = small_disk(16, holding=finished_run)
    run = disk / finished_run.name
    before = fingerprint(run)
    code, line = run_cli("rescore", run)
    assert_full_disk_line(code, line, "rescore", run)
    assert fingerprint(run) == before


def test_score_cases_on_a_full_disk_leaves_no_cases_file(capsys, tmp_path, small_disk):
    probes = tmp_path / "probes.jsonl"
    rows = [json.loads(probe_line(i)) for i in range(300)]
    probes.write_text("".join(json.dumps({**row, "generation": row["suffix"]}) + "\n" for row in rows), encoding="utf-8")
    disk = small_disk(8)
    line, _ = cli_error(capsys, "score", probes, "--cases", disk / "cases.jsonl", "--workers", "1")
    assert line == f"memtasks score: error: {disk / 'cases.jsonl'}: no space left on device"
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_rescore_names_the_line_of_a_byte_that_is_not_utf8(capsys, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    samples = next(run.glob("samples_*.jsonl"))
    lines = samples.read_bytes().split(b"\n")
    samples.write_bytes(b"\n".join([lines[0], lines[1].replace(b'"', b'"\xff', 1), *lines[2:]]))
    line, _ = cli_error(capsys, "rescore", run)
    assert line == f"memtasks rescore: error: {samples}:2: not valid UTF-8 (byte 2 of the line)"


# ------------------------------------------------------------------------- messages that name the right thing


@pytest.mark.parametrize("command", ["eval", "finetune", "study", "attention"])
def test_a_folder_given_as_a_data_file_is_named_a_folder(capsys, tmp_path, inputs, command):
    data = inputs / "data" / "train.jsonl"
    data.unlink()
    data.mkdir()
    argv = command_line(command, inputs, tmp_path / "out")
    if command == "eval":
        argv += ["--metadata", json.dumps({"data_files": str(data)})]
    before = fingerprint(tmp_path)
    line = refused(capsys, argv)
    assert f"{data} is a folder, not a data file" in line, line
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("command", ["eval", "attention"])
def test_a_missing_local_model_is_named_before_any_hub_logic(capsys, tmp_path, inputs, command):
    missing = tmp_path / "models" / "no-such-model"
    line = refused(capsys, command_line(command, inputs, tmp_path / "out", model=missing))
    assert line == f"memtasks {command}: error: model's pretrained {missing} does not exist (a local model is a folder saved by save_pretrained)"


def test_a_json_message_that_ends_in_at_gets_no_second_at():
    with pytest.raises(DataFileError, match=r"^f:1: invalid JSON \(Unterminated string starting at column 7\)$"):
        parse_json_line('{"a": "b', "f:1")
    with pytest.raises(DataFileError, match=r"^f:1: invalid JSON \(Expecting value at column 7\)$"):
        parse_json_line('{"a": ', "f:1")


def test_an_unknown_fine_tuning_option_of_a_study_gets_the_nearest_name(capsys, tmp_path, inputs):
    config = command_line("study", inputs, tmp_path / "out")[1]
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text(encoding="utf-8")), "finetune": {"options": {"batch_sise": 4}}}), encoding="utf-8")
    before = fingerprint(tmp_path)
    line = refused(capsys, ["study", config])
    assert line == f"memtasks study: error: {config}: unknown key 'finetune.options.batch_sise' (did you mean 'batch_size'?)"
    assert fingerprint(tmp_path) == before


def study_of_one_probe(tmp_path: Path, inputs: Path):
    from memtasks.study import read_study_config

    config_path = inputs / "study.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {"name": "s", "output_dir": str(tmp_path / "study"), "models": [{"name": "m", "path": str(inputs / "model")}],
             "tasks": ["mem_imdb"], "data_files": {"mem_imdb": str(imdb_data(inputs))}, "finetune": {"mixtures": []}}
        ),
        encoding="utf-8",
    )
    return read_study_config(config_path)


def test_a_study_step_that_lm_eval_refuses_leaves_no_folder(tmp_path, inputs):
    from memtasks.study import run_study

    def refuse(arguments):
        raise ValueError("unrecognized arguments: --limt 3")

    with pytest.raises(ValueError, match="--limt"):
        run_study(study_of_one_probe(tmp_path, inputs), log=lambda _: None, evaluate=refuse)
    assert not (tmp_path / "study").exists()


def test_a_study_never_adopts_a_cut_results_file_and_a_later_run_replaces_what_an_attempt_left(tmp_path, inputs):
    """A writer that cut a file short without saying so (lm-eval's, on a full disk, exited 0): the step is
    not recorded, nothing moves into runs/STEP, and the study run again adopts one whole run only."""
    from memtasks.manifest import MANIFEST, StudyManifest
    from memtasks.study import run_study

    config = study_of_one_probe(tmp_path, inputs)
    whole = json.dumps({"results": {"mem_imdb": {}}})

    def evaluate(arguments, results=whole[:20], samples='{"doc": '):
        folder = tmp_path / "study" / Path(arguments[arguments.index("--output_path") + 1]).parent
        (folder / "results_2026-01-01.json").write_text(results)
        (folder / "samples_mem_imdb_2026-01-01.jsonl").write_text(samples)
        return 0

    step = tmp_path / "study" / "runs" / "m__pretrained__mem_imdb"
    cut = tmp_path / "study" / "runs" / "m__pretrained__mem_imdb.partial" / "results_2026-01-01.json"
    with pytest.raises(ValueError, match=f"^{re.escape(str(cut))}: not a complete lm-eval output .*: step m/pretrained/mem_imdb is not recorded"):
        run_study(config, log=lambda _: None, evaluate=evaluate)
    assert not step.exists()
    # An earlier attempt's files, left by a run killed between moving them and recording the step.
    step.mkdir(parents=True)
    (step / "results_2025-12-31.json").write_text(whole)
    manifest = run_study(config, log=lambda _: None, evaluate=lambda arguments: evaluate(arguments, whole, "{}\n"))
    assert sorted(p.name for p in step.iterdir()) == ["results_2026-01-01.json", "samples_mem_imdb_2026-01-01.jsonl"]
    assert [s.id for s in StudyManifest.read(tmp_path / "study" / MANIFEST).evals()] == [s.id for s in manifest.evals()] == ["m/pretrained/mem_imdb"]


def test_eval_writes_the_files_lm_evals_writer_would(tmp_path):
    """memtasks eval writes the results and samples logs itself (lm-eval's writer swallows a failed write):
    the same names and the same content."""
    from lm_eval.loggers import EvaluationTracker

    from memtasks.harness.save import save_run

    def run():
        sample = {"doc_id": 0, "doc": {"id": "p1", "prefix": "a b"}, "target": 7, "arguments": [["a b", {"until": []}]],
                  "resps": [["c d"]], "filtered_resps": ["c d"], "doc_hash": "1", "prompt_hash": "2", "target_hash": "3"}
        results = {"results": {"mem_xsum": {"mem_rate,none": 0.5}}, "configs": {"mem_xsum": {"task": "mem_xsum"}}, "config": {}}
        return results, {"mem_xsum": [sample]}

    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    tracker = EvaluationTracker(output_path=str(theirs))
    results, samples = run()
    tracker.save_results_aggregated(results=results, samples=samples)
    tracker.save_results_samples(task_name="mem_xsum", samples=samples["mem_xsum"])
    tracker_ours = EvaluationTracker(output_path=str(ours))
    written = save_run(tracker_ours, *run())
    assert written.parent == ours / "__main__" or written.parent.parent == ours

    def content(folder: Path) -> dict[str, object]:
        found = {}
        for path in folder.rglob("*.json*"):
            name = path.relative_to(folder).as_posix().replace(tracker.date_id, "DATE").replace(tracker_ours.date_id, "DATE")
            if path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                for moment in ("start_time", "end_time", "total_evaluation_time_seconds"):
                    data.pop(moment, None)
                found[name] = data
            else:
                found[name] = path.read_text(encoding="utf-8")
        return found

    assert content(ours) == content(theirs) and len(content(ours)) == 2


def test_files_lm_eval_wrote_itself_are_checked_and_a_cut_run_removed(tmp_path):
    """With uploads, lm-eval's own command writes the files (and logs a failed write as a warning only)."""
    from memtasks.harness.save import check_written

    run = tmp_path / "out" / "org__m"
    run.mkdir(parents=True)
    earlier = run / "results_2025.json"
    earlier.write_text('{"results": ')  # another run's file, not this one's to judge
    os.utime(earlier, (1.0e9, 1.0e9))
    started = earlier.stat().st_mtime + 10
    results = run / "results_2026.json"
    results.write_text('{"results": {"mem_xsum": ', encoding="utf-8")
    samples = run / "samples_mem_xsum_2026.jsonl"
    samples.write_text("{}\n", encoding="utf-8")
    with pytest.raises(OSError, match=f"^{re.escape(str(results))}: cut short .*the run's files are removed$"):
        check_written(tmp_path / "out", started)
    assert sorted(p.name for p in run.iterdir()) == ["results_2025.json"]
    with pytest.raises(OSError, match="lm-eval wrote no results file there"):
        check_written(tmp_path / "out", started)
    results.write_text('{"results": {}}', encoding="utf-8")
    check_written(tmp_path / "out", started)


def test_a_studys_data_without_the_probed_field_is_named_by_its_config_key_before_any_step(capsys, tmp_path, inputs):
    """Found by lm-eval, the error named the file by ``--metadata data_files`` and a path relative to the
    study folder (``../../inputs/...``), after the steps before it had run."""
    data = inputs / "data" / "train.jsonl"
    with data.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "x", "summary": "s"}) + "\n")
    config = command_line("study", inputs, tmp_path / "out")[1]
    before = fingerprint(tmp_path)
    line = refused(capsys, ["study", config])
    assert line == f"memtasks study: error: {config}: data_files.mem_xsum: {data}:5: field 'document' is missing (the record has id, summary)"
    assert fingerprint(tmp_path) == before
