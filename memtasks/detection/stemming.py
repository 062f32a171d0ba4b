"""The Snowball English ("Porter2") stemmer, as NLTK's ``SnowballStemmer("english")`` applies it.

Importing NLTK costs about 1.5 s of start-up and 0.3 s at exit (it loads
SciPy and scikit-learn), more than a scoring run spends on stemming, so the
detector stems with this module and imports NLTK only for the ``porter``
option. Stems must be NLTK's to the letter: they are the detector's terms, so
one different stem changes similarities, seeds and rates. NLTK follows
Porter's algorithm (https://snowballstem.org/algorithms/english/stemmer.html)
with its own bookkeeping of the regions R1 and R2, which differs from the
published definition in a few corners (where a step replaces a suffix longer
than R2, or appends an "e"); those corners are reproduced here, as noted, and
tests/test_detection.py checks every word of the shared data against NLTK.

The regions are kept as their lengths: R1 and R2 are always endings of the
word, so "R1 ends with S" is ``r1 >= len(S)`` once the word ends with S.
"""

from __future__ import annotations

import re

_VOWELS = frozenset("aeiouy")
_DOUBLES = ("bb", "dd", "ff", "gg", "mm", "nn", "pp", "rr", "tt")
_LI_ENDINGS = frozenset("cdeghkmnrt")

# Whole words stemmed by exception (the algorithm's two exception lists, the
# second spelled out with the inflections that reach it).
_EXCEPTIONS = {
    "skis": "ski", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "idly": "idl",
    "gently": "gentl", "ugly": "ugli", "early": "earli", "only": "onli", "singly": "singl",
    **{w: w for w in ("sky", "news", "howe", "atlas", "cosmos", "bias", "andes")},
    **{form: base for base in ("inning", "outing", "canning", "herring", "earring") for form in (base, base + "s")},
    **{
        form: base
        for base in ("proceed", "exceed", "succeed")
        for form in (base, base + "s", base + "ed", base + "ing")
    },
}

# Prefixes whose R1 starts right after them, whatever their letters.
_R1_PREFIXES = ("gener", "arsen", "commun")
_VOWEL_THEN_OTHER = re.compile("[aeiouy][^aeiouy]")

# Steps 2 and 3: suffix -> what replaces it, tried longest first.
#   int n: the last n letters go (the regions shrink with the word);
#   (replacement, r2): the suffix is rewritten as a whole, and a region shorter
#     than the suffix becomes empty, R2 then ``r2`` letters long (NLTK's "e"
#     after some rewrites, where the published definition would keep
#     whatever of the replacement lies in R2);
#   "e": the last letter becomes "e", regions unchanged;
#   None: a condition of its own (see _step2 and _step3).
_STEP2: dict[str, int | tuple[str, int] | str | None] = {
    "ization": ("ize", 0), "ational": ("ate", 1), "fulness": 4, "ousness": ("ous", 0), "iveness": ("ive", 1),
    "tional": 2, "biliti": ("ble", 0), "lessli": 2, "entli": 2, "ation": ("ate", 1),
    "alism": ("al", 0), "aliti": ("al", 0), "ousli": ("ous", 0), "iviti": ("ive", 1), "fulli": 2,
    "enci": "e", "anci": "e", "abli": "e", "izer": ("ize", 0), "ator": ("ate", 1), "alli": ("al", 0),
    "bli": ("ble", 0), "ogi": None, "li": None,
}
_STEP3: dict[str, int | tuple[str, int] | str | None] = {
    "ational": ("ate", 0), "tional": 2, "alize": 3, "icate": ("ic", 0), "iciti": ("ic", 0),
    "ative": None, "ical": ("ic", 0), "ness": 4, "ful": 3,
}


class _Endings:
    """A step's suffixes, matched as the algorithm says: the longest one the word ends with."""

    def __init__(self, endings):
        self._endings = frozenset(endings)
        self._lengths = sorted({len(e) for e in self._endings}, reverse=True)
        self._last_letters = frozenset(e[-1] for e in self._endings)

    def longest(self, text: str) -> str | None:
        """The longest suffix that ``text`` ends with, or None."""
        if text[-1:] not in self._last_letters:
            return None
        for n in self._lengths:
            if text[-n:] in self._endings:
                return text[-n:]
        return None


_STEP0 = _Endings(("'s'", "'s", "'"))
_STEP1A = _Endings(("sses", "ied", "ies", "us", "ss", "s"))
_STEP1B = _Endings(("eedly", "ingly", "edly", "eed", "ing", "ed"))
_STEP2_ENDINGS, _STEP3_ENDINGS = _Endings(_STEP2), _Endings(_STEP3)
_STEP4 = _Endings((
    "ement", "ance", "ence", "able", "ible", "ment", "ant", "ent", "ism", "ate", "iti", "ous", "ive",
    "ize", "ion", "al", "er", "ic",
))


def _regions(word: str) -> tuple[int, int]:
    """Lengths of R1 and R2: R1 follows the first non-vowel after a vowel, R2 the next such place in R1."""
    for prefix in _R1_PREFIXES:
        if word.startswith(prefix):
            start1 = len(prefix)
            break
    else:
        found = _VOWEL_THEN_OTHER.search(word)
        start1 = found.end() if found else len(word)
    found = _VOWEL_THEN_OTHER.search(word, start1)
    start2 = found.end() if found else len(word)
    return len(word) - start1, len(word) - start2


def _has_vowel(text: str) -> bool:
    return any(c in _VOWELS for c in text)


def _ends_short_syllable(word: str) -> bool:
    """A short syllable ends the word: non-vowel, vowel, non-vowel other than w, x or Y;
    or, for a two-letter word, vowel then non-vowel."""
    if len(word) == 2:
        return word[0] in _VOWELS and word[1] not in _VOWELS
    return (
        len(word) >= 3
        and word[-1] not in _VOWELS
        and word[-1] not in "wxY"
        and word[-2] in _VOWELS
        and word[-3] not in _VOWELS
    )


class _Word:
    """A word being stemmed with the lengths of its regions R1 and R2."""

    __slots__ = ("text", "r1", "r2")

    def __init__(self, text: str):
        self.text = text
        self.r1, self.r2 = _regions(text)

    def cut(self, n: int) -> None:
        """Delete the last ``n`` letters (the regions shrink with the word)."""
        self.text = self.text[:-n]
        self.r1 = max(self.r1 - n, 0)
        self.r2 = max(self.r2 - n, 0)

    def replace(self, suffix: str, replacement: str, r2_if_short: int = 0) -> None:
        """Replace the ending ``suffix`` as a whole: a region that held all of it
        holds the replacement instead, a shorter one becomes empty (R2: ``r2_if_short``)."""
        change = len(replacement) - len(suffix)
        self.text = self.text[: len(self.text) - len(suffix)] + replacement
        self.r1 = self.r1 + change if self.r1 >= len(suffix) else 0
        self.r2 = self.r2 + change if self.r2 >= len(suffix) else r2_if_short


def _step0(w: _Word) -> None:
    suffix = _STEP0.longest(w.text)
    if suffix is not None:
        w.cut(len(suffix))


def _step1a(w: _Word) -> None:
    suffix = _STEP1A.longest(w.text)
    if suffix == "sses":
        w.cut(2)
    elif suffix in ("ied", "ies"):
        w.cut(2 if len(w.text) > 4 else 1)
    elif suffix == "s" and _has_vowel(w.text[:-2]):
        w.cut(1)


def _step1b(w: _Word) -> None:
    suffix = _STEP1B.longest(w.text)
    if suffix is None:
        return
    if suffix in ("eed", "eedly"):
        if w.r1 >= len(suffix):
            w.replace(suffix, "ee")
        return
    if not _has_vowel(w.text[: -len(suffix)]):
        return
    w.cut(len(suffix))
    if w.text.endswith(("at", "bl", "iz")):
        # NLTK lengthens R1 by the "e" whatever it held, and R2 only
        # when the word is long or R1 then holds 3 letters or more.
        w.text += "e"
        w.r1 += 1
        if len(w.text) > 5 or w.r1 >= 3:
            w.r2 += 1
    elif w.text.endswith(_DOUBLES):
        w.cut(1)
    elif w.r1 == 0 and _ends_short_syllable(w.text):
        w.text += "e"


def _step1c(w: _Word) -> None:
    text = w.text
    if len(text) > 2 and text[-1] in "yY" and text[-2] not in _VOWELS:
        w.text = text[:-1] + "i"


def _rewrite(w: _Word, suffix: str, action: int | tuple[str, int] | str) -> None:
    """Apply a step 2 or 3 rewrite (see ``_STEP2``) to the ending ``suffix``."""
    if isinstance(action, int):
        w.cut(action)
    elif isinstance(action, tuple):
        w.replace(suffix, *action)
    else:
        w.text = w.text[:-1] + "e"


def _step2(w: _Word) -> None:
    suffix = _STEP2_ENDINGS.longest(w.text)
    if suffix is None or w.r1 < len(suffix):
        return
    action = _STEP2[suffix]
    if action is not None:
        _rewrite(w, suffix, action)
    elif suffix == "ogi":
        if w.text[-4] == "l":
            w.cut(1)
    elif w.text[-3] in _LI_ENDINGS:
        w.cut(2)


def _step3(w: _Word) -> None:
    suffix = _STEP3_ENDINGS.longest(w.text)
    if suffix is None or w.r1 < len(suffix):
        return
    action = _STEP3[suffix]
    if action is not None:
        _rewrite(w, suffix, action)
    elif w.r2 >= len(suffix):
        w.cut(len(suffix))


def _step4(w: _Word) -> None:
    suffix = _STEP4.longest(w.text)
    if suffix is not None and w.r2 >= len(suffix) and (suffix != "ion" or w.text[-4] in "st"):
        w.cut(len(suffix))


def _step5(w: _Word) -> None:
    text = w.text
    if w.r2 >= 1 and text[-1] == "l" and text[-2] == "l":
        w.text = text[:-1]
    elif w.r2 >= 1 and text[-1] == "e":
        w.text = text[:-1]
    elif w.r1 >= 1 and text[-1] == "e":
        # NLTK's reading of "not preceded by a short syllable", for words of 4 letters or more.
        if len(text) >= 4 and (
            text[-2] in _VOWELS or text[-2] in "wxY" or text[-3] not in _VOWELS or text[-4] in _VOWELS
        ):
            w.text = text[:-1]


def stem(word: str) -> str:
    """The Snowball English stem of ``word`` (lowercased first), as NLTK gives it."""
    word = word.lower()
    if len(word) <= 2:
        return word
    if word in _EXCEPTIONS:
        return _EXCEPTIONS[word]
    if not word.isascii():
        word = word.replace("\u2019", "'").replace("\u2018", "'").replace("\u201b", "'")
    if word.startswith("'"):
        word = word[1:]
    if "y" in word:
        # A y that is a consonant (at the start, or after a vowel) becomes Y, which no rule takes for a vowel.
        letters = list(word)
        if letters[0] == "y":
            letters[0] = "Y"
        for i in range(1, len(letters)):
            if letters[i] == "y" and letters[i - 1] in _VOWELS:
                letters[i] = "Y"
        word = "".join(letters)
    w = _Word(word)
    _step0(w)
    _step1a(w)
    _step1b(w)
    _step1c(w)
    _step2(w)
    _step3(w)
    _step4(w)
    _step5(w)
    return w.text.replace("Y", "y")
