"""The docs tier: every shell block of README.md and docs/*.md runs, so a renamed flag fails here, not for a reader.

    python -m pytest -m docs tests/test_docs.py      # the tier alone (a few minutes on 2 cores)

Convention for whoever writes README.md or a page of docs/:

- A block fenced ```bash, ```sh or ```shell is run. The blocks of one page run in order, each by
  ``bash -euo pipefail``, in a fresh folder holding a copy of the repository's files (tracked, and
  untracked but not ignored: what a fresh clone has), with this Python first on PATH, offline
  (HF_HUB_OFFLINE, an empty HF_HOME), one thread. ``memtasks/`` and ``task_configs/`` there are
  links to the installed package's sources: read them, never write into them. Each block must
  exit 0 within BLOCK_TIMEOUT seconds. A later block of the page may use the files an earlier one
  wrote; nothing else carries over (no ``cd``, no ``export``).
- A block that is not meant to run (it needs a GPU, a hub download, an Elasticsearch server, the
  network, many minutes of CPU, or it is illustrative, with placeholders) is fenced ```text or
  ```console, or has the line ``<!-- not-run: why -->`` just before its fence (a reason is
  required). Output shown to the reader goes in ```text.
- A ```text block right after a runnable block, with only prose between them (no heading, no
  other block), is that block's output, and is checked: after masking durations, rates per
  second and the run's folder, each of its lines must be a line the block printed (stdout and
  stderr together, as a terminal shows them; progress bars left out), in the order shown. A
  line of ``...`` stands for lines left out. A ```text block there that is not the output
  (commands that cannot run here, an example of another run's error) has the line
  ``<!-- not-output: why -->`` just before its fence.
- Paths are relative to the repository root and stay inside it (no /tmp, no ``../shared``: that
  folder exists only on the project's own machines; name the public dataset instead). Keep
  runnable blocks small: the tiny models of ``memtasks tiny-models``, ``memtasks/demo_data/``,
  ``tests/data/``.
- A page whose runnable blocks name SmolLM2 (``smollm2``) is marked slow; its
  ``memtasks models get smollm2-135m DIR`` finds the copy converted once per test run (the
  ``smollm2_dir`` fixture of conftest.py) already in DIR, so the conversion is not paid twice.
  Every page's run is also marked e2e (it runs the console script), so the fast tier leaves it out.

The checks that need no run (README length, no ``../shared``, links and anchors that resolve,
every page in the README's map, every not-run block says why) are in the fast tier.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300
BLOCK_TIMEOUT = 600
RUN_LANGUAGES = frozenset({"bash", "sh", "shell"})
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<why>.*?)\s*-->$")
NOT_OUTPUT = re.compile(r"^<!--\s*not-output:\s*(?P<why>.*?)\s*-->$")
HEADING = re.compile(r"^#{1,6}\s")
ELIDED = "..."
# What differs from run to run in a shown output: durations ("0.25 s", "1 min 3 s"), rates ("12190 pairs/s").
VARYING = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?(?:[a-z]+/s|ms|s|min|minutes?|seconds?)\b")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None  # the reason given in <!-- not-run: ... -->, if any
    not_output: str | None = None  # the reason given in <!-- not-output: ... -->, if any
    output_of: int | None = None  # for shown output, the line of the runnable block whose output it is

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGUAGES and self.not_run is None


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the not-run and not-output reasons of the line before each (indented
    fences too), and for a ```text block that is a runnable block's output, that block's line."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i, runnable, heading_since = 0, None, False
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            heading_since = heading_since or bool(HEADING.match(lines[i]))
            i += 1
            continue
        indent, ticks, lang = fence["indent"], fence["ticks"], fence["lang"].lower()
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        reason, not_output = NOT_RUN.match(before), NOT_OUTPUT.match(before)
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(ticks):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        output_of = runnable if lang == "text" and not not_output and not heading_since else None
        block = Block(
            _name(page), i + 1, lang, "\n".join(body) + "\n", reason["why"] if reason else None,
            not_output["why"] if not_output else None, output_of,
        )
        found.append(block)
        runnable, heading_since = (block.line if block.runs else None), False
        i = j + 1
    return found


def _shown_lines(text: str, work: Path) -> list[str]:
    """Lines as the comparison of shown and printed output reads them: the run's folder and what varies
    masked, trailing spaces dropped, progress bars (rewritten in place with carriage returns) left out."""
    lines = []
    for line in re.split(r"[\r\n]", text.replace(f"{work}/", "").replace(str(work), ".")):
        line = VARYING.sub("<varies>", line.rstrip())
        if line and not re.search(r"\d+%\|", line):
            lines.append(line)
    return lines


def output_mismatch(shown: str, printed: str, work: Path) -> str | None:
    """None when every line of ``shown`` is a line of ``printed``, in order (``...`` lines stand for any
    lines), after masking; else which shown line was not found where it should be."""
    wanted = _shown_lines(shown, work)
    got = _shown_lines(printed, work)
    position = 0
    for line in wanted:
        if line == ELIDED:
            continue
        try:
            position = got.index(line, position) + 1
        except ValueError:
            return f"shown line not printed (or not in this order): {line!r}"
    return None


def _page_params():
    params = []
    for page in pages():
        runnable = [b for b in blocks(page) if b.runs]
        if not runnable:
            continue
        marks = [pytest.mark.e2e]
        if any("smollm2" in b.text for b in runnable):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(page, id=_name(page), marks=marks))
    return params


def _repository_files() -> list[str]:
    """What a fresh clone holds (plus new files not yet committed), or everything but local state without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode("utf-8").split("\0")
        return [name for name in listed if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "models", "memtasks-demo", "__pycache__", ".pytest_cache", "build", "dist"}
        parts = lambda p: p.relative_to(ROOT).parts  # noqa: E731
        return [
            p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(parts(p)) and not any(part.endswith(".egg-info") for part in parts(p))
        ]


# The installed package's sources (an editable install's): linked, not copied, so that `python -c "import memtasks"`
# run in the copy imports the installed package, with its compiled-kernel cache, as the console script does.
PACKAGE_FOLDERS = ("memtasks", "task_configs")


@pytest.fixture(scope="session")
def clone_template(tmp_path_factory) -> Path:
    template = tmp_path_factory.mktemp("clone")
    for name in _repository_files():
        if name.split("/", 1)[0] in PACKAGE_FOLDERS:
            continue
        target = template / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)  # copies, not links: a block that rewrites a file must not touch the repository
    for folder in PACKAGE_FOLDERS:
        (template / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return template


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMTASKS_", "PYTEST_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HF_HOME=str(home / "hf-home"),  # empty: a block that needs a model downloaded earlier fails here, as in CI
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",  # stdout and stderr in the order a terminal shows them
        MPLBACKEND="Agg",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


@pytest.mark.parametrize("page", _page_params())
def test_every_runnable_block_of_the_page_runs(page: Path, clone_template: Path, tmp_path: Path, request):
    work = tmp_path / "clone"
    shutil.copytree(clone_template, work, symlinks=True)
    runnable = [b for b in blocks(page) if b.runs]
    for target in sorted({m for b in runnable for m in re.findall(r"memtasks models get smollm2-135m (\S+)", b.text)}):
        # Converted once per test run; `models get` then finds it complete and does nothing.
        link = work / target
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(request.getfixturevalue("smollm2_dir").resolve(), target_is_directory=True)
    env = _environment(tmp_path)
    outputs = {b.output_of: b for b in blocks(page) if b.output_of is not None}
    for block in runnable:
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{block.page}:{block.line}: the block ran over {BLOCK_TIMEOUT} s:\n{block.text}")
        if done.returncode != 0:
            pytest.fail(
                f"{block.page}:{block.line}: the block exited {done.returncode}:\n{block.text}\n"
                f"--- output (end) ---\n{done.stdout[-3000:]}"
            )
        shown = outputs.get(block.line)
        mismatch = shown and output_mismatch(shown.text, done.stdout, work)
        if mismatch:
            pytest.fail(
                f"{shown.page}:{shown.line}: the output shown is not what the block at line {block.line} printed: "
                f"{mismatch}\n--- printed (end) ---\n{done.stdout[-3000:]}"
            )


def test_the_readme_is_at_most_300_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to a page of docs/"


def test_no_page_names_the_projects_own_shared_folder():
    # ../shared exists only on the project's machines; a reader has the public dataset, named on the page.
    hits = [
        f"{_name(page)}:{n}" for page in pages()
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if "../shared" in line
    ]
    assert hits == [], f"pages that name ../shared: {hits}"


def test_every_block_that_is_not_run_says_why():
    problems = []
    for page in pages():
        for block in blocks(page):
            if block.not_run is not None and not block.not_run:
                problems.append(f"{block.page}:{block.line}: <!-- not-run: --> without a reason")
            if block.not_output is not None and not block.not_output:
                problems.append(f"{block.page}:{block.line}: <!-- not-output: --> without a reason")
    assert problems == []


def _page(tmp_path: Path, monkeypatch, text: str) -> Path:
    """A page of ``text`` in a repository root of its own (``tmp_path``)."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_a_shown_output_must_be_what_its_block_prints_in_order(tmp_path, monkeypatch):
    page = _page(
        tmp_path, monkeypatch,
        "```bash\nmemtasks score probes.jsonl\n```\n\nIt prints:\n\n```text\nhigh 2.67%\nlow 3.00%\n```\n\n"
        "<!-- not-output: another run's error -->\n```text\nerror\n```\n\n## Next\n\n```text\nnot output\n```\n",
    )
    run, shown, example, other = blocks(page)
    assert (shown.output_of, example.output_of, other.output_of) == (run.line, None, None)
    work = tmp_path / "clone"
    printed = f"\rscore:  50%|#####     | 1/2\rscore: 100%|##########| 2/2\nhigh 2.67%\nlow 3.00%\nread {work}/probes.jsonl in 0.31 s\n"
    assert output_mismatch(shown.text, printed, work) is None
    assert output_mismatch("high 2.67%\n...\nread probes.jsonl in 1.2 s\n", printed, work) is None
    swapped = "high 2.67%\nlow 3.00%\n".replace("high 2.67%\nlow 3.00%", "low 3.00%\nhigh 2.67%")
    assert output_mismatch(swapped, printed, work) == "shown line not printed (or not in this order): 'high 2.67%'"
    assert output_mismatch("high 2.68%\n", printed, work) == "shown line not printed (or not in this order): 'high 2.68%'"


LINK = re.compile(r"\]\((?!https?://|mailto:)(?P<target>[^)#\s]*)(?:#(?P<anchor>[^)\s]*))?\)")


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#{1,6}\s+(.*?)\s*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_of_the_pages_resolves():
    broken = []
    for page in pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for m in LINK.finditer(text):
            target = (page.parent / m["target"]) if m["target"] else page
            if not target.exists():
                broken.append(f"{_name(page)}: {m['target']}")
            elif m["anchor"] and target.suffix == ".md" and m["anchor"] not in _anchors(target):
                broken.append(f"{_name(page)}: {m['target']}#{m['anchor']} (no such heading)")
    assert broken == [], f"links that lead nowhere: {broken}"


def test_the_readme_maps_every_page_of_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [_name(page) for page in sorted((ROOT / "docs").glob("*.md")) if f"({_name(page)})" not in readme]
    assert missing == [], f"docs pages the README's map does not link: {missing}"


def test_the_block_reader_sees_fences_reasons_and_indented_blocks(tmp_path, monkeypatch):
    page = _page(
        tmp_path, monkeypatch,
        "```bash\necho run\n```\n\n<!-- not-run: needs a GPU -->\n\n```bash\nnvidia-smi\n```\n"
        "```text\noutput\n```\n- item\n\n  ```sh\n  echo indented\n  ```\n",
    )
    found = blocks(page)
    assert [(b.lang, b.runs, b.not_run, b.text) for b in found] == [
        ("bash", True, None, "echo run\n"),
        ("bash", False, "needs a GPU", "nvidia-smi\n"),
        ("text", False, None, "output\n"),
        ("sh", True, None, "echo indented\n"),
    ]


def test_the_readmes_install_and_test_commands_are_the_ones_ci_runs():
    # They are not run here (a package download; the suite itself): CI runs them, so they must be its own.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = {b.line: b for b in blocks(ROOT / "README.md")}
    install = [b for b in readme.values() if "pip install -e" in b.text]
    tests = [b for b in readme.values() if b.text.strip() == "python -m pytest"]
    assert install and tests, "README.md lost its install or its test command"
    for block in install + tests:
        for line in block.text.strip().splitlines():
            assert line.strip() in ci, f"README.md:{block.line}: `{line.strip()}` is not what .ci/run runs"
