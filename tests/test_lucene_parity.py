"""The embedded index ranks as Elasticsearch does: its standard analyzer, Lucene's BM25, ties by id.

The reference below is written directly from Lucene's formula (BM25Similarity,
SmallFloat.intToByte4, BooleanQuery's merging of repeated clauses) with numpy
float32 scalars for Java's floats; it shares no code with memtasks.retrieval
except the analyzer, which has tests of its own here: expected tokens of Lucene
9's StandardTokenizer (UAX #29 and TR #51 rules over Unicode 12.1 data, longest
match, a 255-unit buffer), and a second implementation of its grammar as a
leftmost-longest regular expression over the shipped Unicode 12.1 ranges.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex

from memtasks.retrieval import BM25Index, analyze
from memtasks.retrieval.analysis import tokenize
from memtasks.retrieval.vocabulary import Vocabulary, analyzed_ids

DATA = Path(__file__).parent / "data" / "example_probes.jsonl"
F = np.float32


def lucene_length(length: int) -> int:
    """A length as Lucene stores it: exact below 24, then 24 + (length - 24) cut to 4 significant bits."""
    if length < 24:
        return length
    rest = length - 24
    drop = max(rest.bit_length() - 4, 0)
    return 24 + ((rest >> drop) << drop)


class LuceneReference:
    """Elasticsearch's BM25 ranking of ``docs``, written from the formula."""

    def __init__(self, docs: dict[int, str]):
        self.terms = {i: Counter(analyze(text)) for i, text in docs.items()}
        self.lengths = {i: sum(c.values()) for i, c in self.terms.items()}
        self.n_docs = sum(1 for n in self.lengths.values() if n > 0)
        self.avgdl = F(sum(self.lengths.values()) / self.n_docs)
        self.containing: dict[str, set[int]] = {}
        for doc_id, counts in self.terms.items():
            for term in counts:
                self.containing.setdefault(term, set()).add(doc_id)

    def top_k(self, query: str, k: int) -> list[tuple[int, float]]:
        weights = {}
        for term, boost in Counter(analyze(query)).items():
            n = len(self.containing.get(term, ()))
            if n:
                weights[term] = F(boost) * F(math.log(1 + (self.n_docs - n + 0.5) / (n + 0.5)))
        scores = {}
        for doc_id in set().union(*(self.containing[t] for t in weights)):
            counts = self.terms[doc_id]
            dl = F(lucene_length(self.lengths[doc_id]))
            norm_inverse = F(1) / (F(1.2) * ((F(1) - F(0.75)) + F(0.75) * dl / self.avgdl))
            matched = [t for t in weights if counts[t] > 0]
            if matched:
                total = sum(float(weights[t] - weights[t] / (F(1) + F(counts[t]) * norm_inverse)) for t in matched)
                scores[doc_id] = F(total)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return [(doc_id, float(score)) for doc_id, score in ranked[:k]]


def fixture_corpus() -> tuple[dict[int, str], list[str]]:
    """Real suffixes, exact duplicates under other ids, and documents that tie only through the norm encoding."""
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    docs = {1000 + 3 * i: r["suffix"] for i, r in enumerate(records)}
    # The same text under a smaller and a larger id: an exact tie.
    docs[5] = records[0]["suffix"]
    docs[999_999] = records[1]["suffix"]
    # 100 and 103 terms are both stored as length 96, so
    # these two score exactly the same although one is longer.
    filler = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    docs[77] = "quokka " + " ".join(filler[i % 10] for i in range(99))
    docs[76] = "quokka " + " ".join(filler[i % 10] for i in range(102))
    # Documents without a term count neither in N nor in the average length.
    docs[3], docs[4] = "", "!!! ... ---"
    queries = [r["generation"] for r in records] + [r["suffix"][:300] for r in records[:50]]
    rng = random.Random(3)
    vocabulary = sorted({t for text in docs.values() for t in analyze(text)})
    for _ in range(60):
        words = rng.choices(vocabulary, k=rng.randint(1, 6))
        queries.append(" ".join(words * rng.randint(1, 4)) + " " + " ".join(rng.choices(vocabulary, k=3)))
    queries += ["quokka", "quokka quokka alpha", "the the the", "Don't stop"]
    return docs, queries


@pytest.fixture(scope="module")
def corpus():
    docs, queries = fixture_corpus()
    index = BM25Index()
    index.add(list(docs), list(docs.values()))
    return docs, queries, index


def test_top10_equals_lucene_formula_on_fixture_corpus(corpus):
    docs, queries, index = corpus
    reference = LuceneReference(docs)
    for query in queries:
        expected = reference.top_k(query, 10)
        got = index.search(query, 10)
        assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in expected], query[:80]
        # Bit-identical float scores, not merely the same order.
        assert [np.float32(s) for _, s in got] == [np.float32(s) for _, s in expected], query[:80]
    assert index.top_k(queries, k=10, workers=2) == [[d for d, _ in reference.top_k(q, 10)] for q in queries]


def test_top10_equals_lucene_formula_on_overlapping_windows():
    # Like a corpus of training suffixes cut from running text: 1,500 windows
    # of 20 to 60 words at random places of one word stream, so that many
    # documents share most of a query's terms and the top 10 is decided among
    # near-ties and ties, where the search prunes most (bounds, full-score
    # floor, look-ups after the switch). Queries: windows with words dropped,
    # duplicated windows, runs of the stream, and repeated common words.
    words = " ".join(json.loads(line)["suffix"] for line in DATA.read_text(encoding="utf-8").splitlines()).split()
    rng = random.Random(17)
    docs = {}
    for i in range(1500):
        start = rng.randrange(len(words) - 60)
        docs[rng.randrange(10**9)] = " ".join(words[start : start + rng.randint(20, 60)])
    # 14 copies of some windows: the top 10 is then a tie, cut by id.
    for text in rng.sample(list(docs.values()), 5):
        docs.update({rng.randrange(10**9): text for _ in range(13)})
    texts = list(docs.values())
    queries = [" ".join(w for w in rng.choice(texts).split() if rng.random() > 0.2) for _ in range(25)]
    queries += texts[1500:1520:4]
    for _ in range(25):
        start = rng.randrange(len(words) - 40)
        queries.append(" ".join(words[start : start + 40]))
    queries.append("the the of and a to in")
    index = BM25Index()
    index.add(list(docs), texts)
    reference = LuceneReference(docs)
    for query in queries:
        got, expected = index.search(query, 10), reference.top_k(query, 10)
        assert [d for d, _ in got] == [d for d, _ in expected], query[:80]
        assert [np.float32(s) for _, s in got] == [np.float32(s) for _, s in expected], query[:80]


def test_exact_duplicates_tie_and_the_smaller_id_ranks_first(corpus):
    docs, _, index = corpus
    ranked = index.search(docs[5], 3)
    assert [ranked[0][0], ranked[1][0]] == [5, 1000]
    assert ranked[0][1] == ranked[1][1]


def test_lengths_are_compared_after_lucenes_norm_encoding(corpus):
    # With exact lengths the 100-term document would win; Lucene stores both
    # lengths as 96, so they tie and the tie goes to the smaller id.
    _, _, index = corpus
    (first, s1), (second, s2) = index.search("quokka", 2)
    assert (first, second) == (76, 77) and s1 == s2
    assert lucene_length(100) == lucene_length(103) == 96 and lucene_length(40) == 40 and lucene_length(41) == 40


def test_a_repeated_query_term_weighs_by_its_count():
    # "cat" in 2 of 4 documents (idf ln 2), "dog" in 1 (idf ln 10/3): one "cat"
    # loses to "dog", two win (2 ln 2 > ln 10/3), as clauses with boost 2.
    docs = {1: "cat alpha", 2: "dog alpha", 3: "cat beta gamma delta", 4: "epsilon zeta"}
    index = BM25Index()
    index.add(list(docs), list(docs.values()))
    assert index.top_k(["cat dog", "cat cat dog", "Cat CAT cat dog"], k=1) == [[2], [1], [1]]
    for query in ("cat cat dog", "cat cat cat dog dog"):
        assert index.search(query, 4) == LuceneReference(docs).top_k(query, 4)


# Symbols from Unicode 1.1 to 12.0 that are Extended_Pictographic in 12.1
# (and so emoji tokens in Lucene 9), whatever a newer Unicode says of them.
OLD_SYMBOLS = "★ ♪ ♫ ♡ ☛ ♔ ⚀ 🂡 🀀 ☺ ☂ ✈ ❤ ☀ ⛄ 🀄 🃏"


@pytest.mark.parametrize(
    "text, terms",
    [
        # Where the standard tokenizer (UAX #29) differs from splitting on non-alphanumerics.
        ("Don't stop", ["don't", "stop"]),
        ("It rose 3.5% to 1,000.", ["it", "rose", "3.5", "to", "1,000"]),
        ("The U.S. team", ["the", "u.s", "team"]),
        ("snake_case and e.g. wi-fi", ["snake_case", "and", "e.g", "wi", "fi"]),
        ("ratio 16:9 at 10:30am", ["ratio", "16", "9", "at", "10", "30am"]),
        ("café naïve Straße", ["café", "naïve", "straße"]),
        # Java lowercases code point by code point: no final sigma, no combining dot.
        ("ΟΔΟΣ İstanbul", ["οδοσ", "istanbul"]),
        # Ideographs and hiragana one by one, katakana and Thai as runs, emoji kept.
        ("東京タワーはすごい", ["東", "京", "タワー", "は", "す", "ご", "い"]),
        ("ภาษาไทย ok", ["ภาษาไทย", "ok"]),
        ("good 👍🏽 🇫🇷!", ["good", "👍🏽", "🇫🇷"]),
        ("-- ... !!! ___", []),
        (OLD_SYMBOLS, OLD_SYMBOLS.split()),
        # A letter that is also an emoji (WB=ALetter), then letters: the word
        # rule's match is the longer one.
        ("ℹb 🅰x xℹ", ["ℹb", "🅰x", "xℹ"]),
        # Keycaps with and without the presentation selector; without one, a
        # digit or letter after the keycap continues the number or word (WB4, WB8, WB10).
        ("#\u20e3 *\ufe0f\u20e3 1\u20e3 1\u20e32 1\u20e3a", ["#\u20e3", "*\ufe0f\u20e3", "1\u20e3", "1\u20e32", "1\u20e3a"]),
        # A ZWJ ends an emoji it follows unless an emoji comes next.
        ("👍\u200d1 👍\u200da 👍\u200d👍", ["👍\u200d", "1", "👍\u200d", "a", "👍\u200d👍"]),
        ("👨\u200d👩\u200d👧 🇫🇷🇩🇪🇮", ["👨\u200d👩\u200d👧", "🇫🇷", "🇩🇪"]),
        # © ® ™ 〰 are Extended_Pictographic, so emoji tokens of their own;
        # a regional indicator alone is none.
        ("©a ® ™ 〰 🇮", ["©", "a", "®", "™", "〰"]),
        # Yezidi letters (Unicode 13) are unassigned in Unicode 12.1: no word.
        ("\U00010e80\U00010e81 ok", ["ok"]),
    ],
)
def test_standard_analyzer(text, terms):
    assert analyze(text) == terms


def test_tokens_longer_than_255_are_split():
    assert [len(t) for t in analyze("a" * 600)] == [255, 255, 90]
    # Java counts UTF-16 code units: an astral letter counts two, and one that
    # would straddle the 255th unit starts the next piece.
    assert [len(t) for t in tokenize("\U0001D400" * 200)] == [127, 73]


@pytest.mark.parametrize(
    "long_word, rest, expected_length, next_token",
    [
        # The scanner's buffer ends inside a would-be token: the token ends
        # where the grammar last accepted, before the quote or full stop...
        ("a" * 254, "'bc", 254, "bc"),
        ("a" * 254, "\u2019bc", 254, "bc"),
        ("a" * 254, ".bc", 254, "bc"),
        ("a" * 254, ":bc", 254, "bc"),
        ("1" * 254, ",5", 254, "5"),
        ("1" * 254, ";5", 254, "5"),
        ("1" * 254, ".5", 254, "5"),
        # ...and scanning restarts there, skipping what cannot start a token:
        # a soft hyphen (Format), a ZWJ or a combining mark (Extend).
        ("a" * 255, "\u00adbc", 255, "bc"),
        ("a" * 255, "\u200dbc", 255, "bc"),
        ("a" * 255, "\u0301bc", 255, "bc"),
        # Within the buffer the rules apply as usual.
        ("a" * 253, "'bc", 255, "c"),
    ],
)
def test_rescan_after_the_255_unit_buffer(long_word, rest, expected_length, next_token):
    tokens = tokenize(long_word + rest + " end")
    assert [len(tokens[0]), *tokens[1:]] == [expected_length, next_token, "end"]


def _ranges() -> dict[str, str]:
    """Each shipped Unicode 12.1 property as the inside of a character class."""
    path = Path(__file__).parents[1] / "memtasks" / "retrieval" / "unicode_12_1.json"
    ranges = json.loads(path.read_text(encoding="utf-8"))["ranges"]
    return {
        name.split("/")[1]: "".join(f"\\U{b:08x}-\\U{e - 1:08x}" for b, e in zip(flat[::2], flat[1::2]))
        for name, flat in ranges.items()
    }


def reference_pattern() -> str:
    """Lucene 9's token rules as one regular expression, for leftmost-longest (POSIX) matching."""
    p = _ranges()
    ext = f"[{p['Format']}{p['Extend']}{p['ZWJ']}]*"
    ext_sans = f"[[{p['Format']}{p['Extend']}{p['ZWJ']}]--[\\uFE0E\\uFE0F]]*"
    zwj = f"[{p['ZWJ']}]"
    emoji_char = (
        f"[[{p['Extended_Pictographic']}][[{p['Emoji']}]--[{p['Regional_Indicator']}0-9#*"
        f"\\u00A9\\u00AE\\u2122\\u3030\\u303D{p['Emoji_Modifier']}]]]"
    )
    element = (
        f"(?:{zwj}*{emoji_char}{ext_sans}\\uFE0F?"
        f"|(?:{zwj}*[{p['Emoji_Modifier_Base']}]{ext_sans})?[{p['Emoji_Modifier']}]{ext_sans})"
    )
    emoji = (
        f"{element}(?:(?:{zwj}{element})*|[\\U000E0020-\\U000E007E]+\\U000E007F)"
        f"|[0-9#*]{ext_sans}\\uFE0F?\\u20E3{ext_sans}"
        f"|[{p['Regional_Indicator']}]{ext}[{p['Regional_Indicator']}]{ext}"
    )

    def ex(*names: str) -> str:
        return "[" + "".join(p[n] for n in names) + "]" + ext

    enl = ex("ExtendNumLet")
    core = (
        f"(?:{ex('Katakana')}(?:(?:{enl})*{ex('Katakana')})*"
        f"|(?:{ex('Hebrew_Letter')}(?:{ex('Single_Quote')}|{ex('Double_Quote')}{ex('Hebrew_Letter')})"
        f"|{ex('Numeric')}(?:(?:(?:{enl})*|{ex('MidNum', 'MidNumLet', 'Single_Quote')}){ex('Numeric')})*"
        f"|{ex('ALetter', 'Hebrew_Letter')}(?:(?:(?:{enl})*|{ex('MidLetter', 'MidNumLet', 'Single_Quote')})"
        f"{ex('ALetter', 'Hebrew_Letter')})*)+)"
    )
    word = f"(?:{enl})*{core}(?:(?:{enl})+{core})*(?:{enl})*"
    return f"{emoji}|{word}|(?:{ex('Complex_Context')})+|{ex('Han')}|{ex('Hiragana')}"


@pytest.fixture(scope="module")
def longest():
    return regex.compile("(?p)" + reference_pattern(), regex.VERSION1)


def test_scanner_finds_the_longest_match_of_the_grammar(longest):
    # Random short texts over characters of every class the rules tell apart
    # (letters, digits, mid-word punctuation, Hebrew, katakana, ideographs,
    # Thai, emoji and their modifiers, selectors, ZWJ, keycaps, flags, tags,
    # Format and Extend characters), against the regular expression.
    rng = random.Random(11)
    alphabet = (
        "ab1_:.',;\"- #*é’\u05d0\u05f3東タは\u0e01👍🏽\u200d\ufe0f\ufe0e\u20e3🇫🇷\U000e0067\U000e007f"
        "\u00ad\u0301ℹ🅰©★\U0001f9b0\u3000\uff11"
    )
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        assert tokenize(text) == longest.findall(text), repr(text)
    for line in DATA.read_text(encoding="utf-8").splitlines()[:100]:
        text = json.loads(line)["suffix"]
        assert tokenize(text) == longest.findall(text)


def test_index_analysis_gives_the_terms_of_analyze():
    # The index's compiled path (texts scanned together, terms lowercased and
    # numbered without Python strings) against analyze() text by text.
    rng = random.Random(5)
    texts = [json.loads(line)["suffix"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    texts += ["", "ΟΔΟΣ İstanbul Σ", OLD_SYMBOLS, "a" * 600, "\ud83d lone surrogate"]
    texts += ["".join(rng.choice("aB1 .'ΣİÅ👍\u200d東") for _ in range(rng.randint(0, 30))) for _ in range(300)]
    vocabulary = Vocabulary()
    ids, counts = analyzed_ids(texts, vocabulary)
    terms = vocabulary.terms()
    assert len(set(terms)) == len(terms)
    at = 0
    for text, count in zip(texts, counts.tolist()):
        assert [terms[i] for i in ids[at : at + count]] == analyze(text), repr(text[:60])
        at += count
    # Looking terms up without adding them: unknown terms are -1.
    found, _ = analyzed_ids(["ΟΔΟΣ unseenword"], vocabulary, insert=False)
    assert [terms[found[0]], found[1]] == ["οδοσ", -1]
