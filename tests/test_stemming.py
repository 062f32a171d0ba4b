"""The detector's stems: Snowball 3's English stemmer through PyStemmer, and where it parts from NLTK's.

The stems are the detector's terms, so a stem that changes moves similarities, seeds and rates.
These tests pin the stems where the Snowball editions differ, so that a PyStemmer release that
changes them fails here rather than moving rates unnoticed.
"""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memtasks.detection.stemming import stem

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PROBES = Path(__file__).parent / "data" / "example_probes.jsonl"

# Every word of tests/data/example_probes.jsonl whose stem is not NLTK's SnowballStemmer("english"):
# word -> (NLTK's stem, memtasks' stem). Snowball 3 keeps "evening", "organization",
# "international" and "university" apart from "even", "organ", "intern" and "universal", and
# stems "-ologist" with "-ology".
DIFFERENT_FROM_NLTK = {
    "added": ("ad", "add"), "adding": ("ad", "add"),
    "dermatologist": ("dermatologist", "dermatolog"), "gastroenterologist": ("gastroenterologist", "gastroenterolog"),
    "gynaecologist": ("gynaecologist", "gynaecolog"), "hematologist": ("hematologist", "hematolog"),
    "neurologist": ("neurologist", "neurolog"), "ophthalmologist": ("ophthalmologist", "ophthalmolog"),
    "radiologist": ("radiologist", "radiolog"), "toxicologist": ("toxicologist", "toxicolog"),
    "urologist": ("urologist", "urolog"),
    "emergence": ("emerg", "emergenc"), "emergency": ("emerg", "emergenc"), "evening": ("even", "evening"),
    "internal": ("intern", "internal"), "international": ("intern", "internat"),
    "internationally": ("intern", "internat"), "internationals": ("intern", "internat"),
    "interstate": ("interst", "interstat"), "organic": ("organ", "organic"),
    "organization": ("organ", "organiz"), "organizations": ("organ", "organiz"),
    "universal": ("univers", "universal"), "universities": ("univers", "universiti"),
    "university": ("univers", "universiti"),
}


def _vocabulary(text: str) -> set[str]:
    from memtasks.detection.text import _TOKEN

    return {token.lower() for token in _TOKEN.findall(text)}


def _nltk_stem():
    from nltk.stem import SnowballStemmer

    return SnowballStemmer("english").stem


@pytest.mark.parametrize(
    "word, expected",
    [
        ("running", "run"), ("runs", "run"), ("generously", "generous"), ("fairly", "fair"), ("skies", "sky"),
        ("dying", "die"), ("news", "news"), ("biology", "biolog"), ("biologist", "biolog"), ("added", "add"),
        ("evening", "evening"), ("university", "universiti"), ("a", "a"), ("", ""),
    ],
)
def test_stems_of_the_snowball_english_stemmer(word, expected):
    assert stem(word) == expected


def test_words_are_lowercased_and_curly_apostrophes_read_as_straight_ones():
    assert stem("Britain’s") == stem("britain's") == stem("BRITAIN‘S") == stem("Britain‛s") == "britain"
    assert stem("Skies") == "sky" and stem("YELLOW") == "yellow"
    assert stem("’tis") == stem("'tis") == "tis"


def test_stems_part_from_nltks_only_where_the_snowball_editions_differ():
    reference = _nltk_stem()
    words = _vocabulary(PROBES.read_text(encoding="utf-8"))
    assert len(words) > 10_000
    differ = {w: (reference(w), stem(w)) for w in sorted(words) if stem(w) != reference(w)}
    assert differ == DIFFERENT_FROM_NLTK


@pytest.mark.slow
def test_stems_part_from_nltks_on_few_words_of_the_shared_data():
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is not there")
    reference = _nltk_stem()
    words = set().union(*(_vocabulary(path.read_text(encoding="utf-8")) for path in sorted(DATA.glob("*.jsonl"))))
    assert len(words) > 50_000
    differ = [w for w in words if stem(w) != reference(w)]
    # 118 of 80,376 words when measured (memtasks/detection/stemming.py).
    assert len(differ) <= 0.002 * len(words)


def test_threads_stem_at_once_as_one_thread_does():
    words = sorted(_vocabulary(PROBES.read_text(encoding="utf-8")))
    expected = [stem(w) for w in words]
    got: dict[int, list[str]] = {}

    def work(i: int) -> None:
        got[i] = [stem(w) for w in words]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(got[i] == expected for i in range(4))


def test_stemming_does_not_import_nltk():
    # NLTK's import costs seconds (it loads SciPy and scikit-learn); PyStemmer's, under a millisecond.
    code = "import sys, json, memtasks.detection.stemming as s; s.stem('running'); print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "Stemmer" in modules and not [m for m in modules if m.split(".")[0] == "nltk"]
