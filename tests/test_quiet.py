"""Lines of other programs that say nothing to memtasks' users are dropped from stderr, and nothing else is."""

import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from memtasks.harness.quiet import LineFilter

GIT_LINE = b"fatal: not a git repository (or any of the parent directories): .git\n"
STREAM = (
    b"Generating:  10%|#         | 1/10\rGenerating: 100%|##########| 10/10\n"
    + GIT_LINE
    + b"fatal: something else went wrong\n"
    + b"fat\n"
    + b"WARNING a real warning\r\n"
    + GIT_LINE.rstrip(b"\n")
)
KEPT = (
    b"Generating:  10%|#         | 1/10\rGenerating: 100%|##########| 10/10\n"
    + b"fatal: something else went wrong\n"
    + b"fat\n"
    + b"WARNING a real warning\r\n"
)


def _filtered(chunks):
    lines = LineFilter()
    return b"".join(lines.feed(c) for c in chunks) + lines.flush()


def test_only_the_dropped_lines_are_removed_however_the_bytes_arrive():
    assert _filtered([STREAM]) == KEPT
    for cut in range(len(STREAM) + 1):
        assert _filtered([STREAM[:cut], STREAM[cut:]]) == KEPT, cut
    rng = random.Random(0)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), 6))
        assert _filtered([STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)])]) == KEPT


def test_a_progress_bar_is_forwarded_as_it_is_drawn():
    lines = LineFilter()
    assert lines.feed(b"Generating:  10%") == b"Generating:  10%"
    # Only a line start that could still become a dropped line waits for more bytes.
    assert lines.feed(b"\rfatal: not") == b"\r"
    assert lines.feed(b" a gift") == b"fatal: not a gift"


CHILD = textwrap.dedent(
    """
    import os, subprocess, sys
    from memtasks.harness.quiet import dropped_lines
    print("before", file=sys.stderr)
    with dropped_lines():
        print("terminal" if os.isatty(2) else "pipe", flush=True)
        subprocess.run(["git", "describe", "--always"], cwd=sys.argv[1], stdout=subprocess.DEVNULL)
        print("inside", file=sys.stderr)
        os.write(2, b"raw bytes\\n")
    print("after", file=sys.stderr)
    """
)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_gits_complaint_outside_a_repository_is_dropped_and_the_rest_kept(tmp_path):
    complaint = subprocess.run(["git", "describe", "--always"], cwd=tmp_path, capture_output=True, text=True)
    assert "not a git repository" in complaint.stderr  # what the filter is there for
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "pipe\n"
    assert done.stderr.splitlines() == ["before", "inside", "raw bytes", "after"]


@pytest.mark.skipif(shutil.which("git") is None or not hasattr(os, "openpty"), reason="needs git and pseudo-terminals")
def test_on_a_terminal_the_run_still_writes_to_a_terminal(tmp_path):
    main, terminal = os.openpty()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert child.wait(timeout=60) == 0
    assert child.stdout.read() == b"terminal\n"
    assert shown.replace(b"\r\n", b"\n").splitlines() == [b"before", b"inside", b"raw bytes", b"after"]
