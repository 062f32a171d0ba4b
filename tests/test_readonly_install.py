"""memtasks installed where it cannot write (a shared system install, a container run as an unprivileged
user without a home): numba caches the compiled kernels elsewhere (memtasks.kernel_cache) instead of
refusing to define them (``RuntimeError: cannot cache function ...: no locator available``).

The subprocess tests copy the package into a read-only folder and run it as a user that cannot write
there: this user when it is not root (root writes through any file mode), else ``nobody`` through
``setpriv``, with an interpreter of this Python version that ``nobody`` can run."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import memtasks

NOBODY = 65534
KERNEL_MODULES = ("memtasks.detection.kernels", "memtasks.retrieval.bm25", "memtasks.retrieval.vocabulary", "memtasks.retrieval.analysis")


def _unprivileged_python() -> list[str] | None:
    """A command that runs this Python version as a user who cannot write in a read-only folder, or None."""
    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    version = sys.version_info[:2]
    for python in dict.fromkeys([sys.executable, shutil.which(f"python{version[0]}.{version[1]}")]):
        if python is None:
            continue
        check = [*prefix, python, "-c", f"import sys; assert sys.version_info[:2] == {version!r}"]
        if subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
            return [*prefix, python]
    return None


@pytest.fixture
def readonly_install():
    """(command prefix, environment, root folder): memtasks copied into ROOT/site (read-only), a home
    that cannot be written, a temporary folder of the run's own; every folder readable by the user."""
    python = _unprivileged_python()
    if python is None:
        pytest.skip("running as root without setpriv or a Python nobody may run")
    root = Path(tempfile.mkdtemp(prefix="memtasks-readonly-"))
    try:
        root.chmod(0o755)
        site = root / "site"
        shutil.copytree(Path(memtasks.__file__).parent, site / "memtasks", ignore=shutil.ignore_patterns("__pycache__"))
        home = root / "home"
        home.mkdir()
        scratch = root / "tmp"
        scratch.mkdir()
        scratch.chmod(0o1777)
        for path in [site, *site.rglob("*"), home]:
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        paths = dict.fromkeys([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(scratch),
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        yield python, env, root
    finally:
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(root, ignore_errors=True)


def test_kernels_are_defined_when_neither_the_package_nor_the_home_can_be_written(readonly_install):
    python, env, root = readonly_install
    code = (
        "import importlib, os\n"
        f"for name in {KERNEL_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(os.environ['NUMBA_CACHE_DIR'])"
    )
    done = subprocess.run([*python, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == str(root / "tmp" / f"memtasks-numba-{NOBODY if os.geteuid() == 0 else os.getuid()}")


@pytest.mark.slow
def test_memtasks_score_works_from_a_readonly_install_and_compiles_once(readonly_install):
    python, env, root = readonly_install
    probes = root / "probes.jsonl"
    text = " ".join(f"w{i}" for i in range(30))
    probes.write_text(json.dumps({"id": "p0", "suffix": text, "generation": text}) + "\n", encoding="utf-8")
    probes.chmod(0o644)
    command = [*python, "-m", "memtasks.cli", "score", str(probes), "--json", "--workers", "1"]
    for _ in range(2):
        done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["memorization"]["rate"] == 1.0
    # The second run loaded the kernels compiled by the first from the cache.
    assert "compiling" not in done.stderr
    user = NOBODY if os.geteuid() == 0 else os.getuid()
    assert any((root / "tmp" / f"memtasks-numba-{user}").rglob("*.nbc"))


# ----------------------------------------------------------------------- where the cache goes, in-process


@pytest.fixture
def kernel_cache():
    from memtasks import kernel_cache

    return kernel_cache


@pytest.fixture
def no_cache_setting(monkeypatch):
    """No NUMBA_CACHE_DIR or XDG_CACHE_HOME; what configure() sets is undone after the test."""
    for name in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    config = sys.modules.get("numba.core.config")
    if config is not None:
        monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)
    yield monkeypatch


def test_a_writable_package_folder_changes_nothing(kernel_cache, no_cache_setting):
    no_cache_setting.setattr(kernel_cache, "_writable", lambda folder: True)
    assert kernel_cache.configure() is None
    assert "NUMBA_CACHE_DIR" not in os.environ


def test_a_numba_cache_dir_of_the_users_own_is_kept(kernel_cache, no_cache_setting):
    no_cache_setting.setenv("NUMBA_CACHE_DIR", "/somewhere/mine")
    no_cache_setting.setattr(kernel_cache, "_writable", lambda folder: False)
    assert kernel_cache.configure() is None
    assert os.environ["NUMBA_CACHE_DIR"] == "/somewhere/mine"


def test_the_xdg_cache_comes_first_then_the_home(kernel_cache, no_cache_setting, tmp_path):
    no_cache_setting.setattr(kernel_cache, "_writable", lambda folder: tmp_path in folder.parents)
    no_cache_setting.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    no_cache_setting.setenv("HOME", str(tmp_path / "home"))
    assert kernel_cache.configure() == tmp_path / "xdg" / "memtasks" / "numba"
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "xdg" / "memtasks" / "numba")
    no_cache_setting.delenv("XDG_CACHE_HOME")
    assert kernel_cache.cache_folder() == tmp_path / "home" / ".cache" / "memtasks" / "numba"


def test_a_temporary_folder_another_user_could_write_is_not_used(kernel_cache, no_cache_setting, tmp_path, capsys):
    """A shared temporary folder: a cache folder of the expected name that is not private (another user
    made it, or may write in it) could hold code planted by someone else: this run compiles into a
    new folder of its own instead, and says so in one line."""
    no_cache_setting.setattr(kernel_cache, "_writable", lambda folder: False)
    no_cache_setting.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"memtasks-numba-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    folder = kernel_cache.configure()
    assert folder is not None and folder != planted and folder.parent == tmp_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(folder) in err and "NUMBA_CACHE_DIR" in err
    planted.chmod(0o700)
    no_cache_setting.delenv("NUMBA_CACHE_DIR")
    assert kernel_cache.configure() == planted
    assert capsys.readouterr().err == ""
