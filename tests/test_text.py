"""Tests for memtasks.detection.text: sentence splitting, tokenizing and preprocessing (spec section 1)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import Stemmer
from nltk.stem import PorterStemmer
from nltk.tokenize import TreebankWordTokenizer

from memtasks.detection import TermEncoder, preprocess, sentence_spans, word_spans
from memtasks.detection.text import english_stopwords, letter_term, word_term

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class _Snowball:
    """The Snowball project's English stemmer (PyStemmer), whose stems are the detector's default terms."""

    def __init__(self):
        self._english = Stemmer.Stemmer("english")

    def stem(self, word: str) -> str:
        return self._english.stemWord(word)


SNOWBALL = _Snowball()
PORTER = PorterStemmer()


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def term(word: str, stemmer=SNOWBALL) -> int:
    """The term id the spec expects for one kept, lowercased token."""
    return word_term(stemmer.stem(word))


def xsum_documents(n: int) -> list[str]:
    path = DATA / "xsum.jsonl"
    if not path.exists():
        pytest.skip(f"real text sample {path} is not available")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["document"] for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def encoder() -> TermEncoder:
    return TermEncoder()


# --------------------------------------------------------------------------- sentence_spans


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith met Dr. Jones in the U.S. capital on Jan. 5 to discuss the hospital budget.",
        "Shares rose to $3.5 billion, up 2.75% on the year, said Prof. Brown of Acme Corp. on Monday.",
        "The vote was held on Oct. 12 and the U.K. delegation left early.",
        "J. R. R. Tolkien wrote the book in 1937.",
    ],
)
def test_abbreviations_initials_and_decimals_do_not_split(text):
    assert sentences(text) == [text]


def test_abbreviation_then_sentence_starter_splits():
    # "U.S." ends the sentence here: the next word is a frequent sentence starter.
    text = "He lives in the U.S. He works in New York."
    assert sentences(text) == ["He lives in the U.S.", "He works in New York."]


def test_decimal_at_sentence_end_still_splits_after_it():
    text = "Inflation reached 2.75%. Analysts were surprised by the figure."
    assert sentences(text) == ["Inflation reached 2.75%.", "Analysts were surprised by the figure."]


def test_quotes_stay_with_their_sentence():
    assert sentences('"It was fair," he said. Then he left.') == ['"It was fair," he said.', "Then he left."]
    # A closing quote after the period belongs to the sentence it closes,
    # an opening quote to the sentence it opens.
    assert sentences('"It was fair." He said so.') == ['"It was fair."', "He said so."]
    assert sentences('She agreed. "We will appeal," her lawyer added.') == [
        "She agreed.",
        '"We will appeal," her lawyer added.',
    ]


def test_question_and_exclamation_marks_split():
    assert sentences("Is it serious? No! It is a mild infection. Rest well.") == [
        "Is it serious?",
        "No!",
        "It is a mild infection.",
        "Rest well.",
    ]
    assert sentences("Really?! Yes.") == ["Really?!", "Yes."]


def test_marks_of_scripts_without_spaces_split_with_or_without_whitespace():
    # Spec 11.2: 。！？ (and their full-width forms) end a sentence though no space
    # follows; a closing quote or bracket stays with the sentence it closes.
    assert sentences("天气很好。我们去公园散步吧！他说：“好的。”医生建议多喝水，注意休息。") == [
        "天气很好。",
        "我们去公园散步吧！",
        "他说：“好的。”",
        "医生建议多喝水，注意休息。",
    ]
    assert sentences("本当ですか？ はい、そうです。「また明日。」") == ["本当ですか？", "はい、そうです。", "「また明日。」"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("هل أنت بخير؟ نعم، شكرا جزيلا.", ["هل أنت بخير؟", "نعم، شكرا جزيلا."]),
        ("मैं घर जा रहा हूँ। वह स्कूल गया।", ["मैं घर जा रहा हूँ।", "वह स्कूल गया।"]),
        ("Москва — столица России. Здесь живут миллионы людей.", ["Москва — столица России.", "Здесь живут миллионы людей."]),
        ("Der Arzt kam um 9.30 Uhr. Er war müde.", ["Der Arzt kam um 9.30 Uhr.", "Er war müde."]),
    ],
    ids=["ar", "hi", "ru", "de"],
)
def test_spaced_scripts_split_on_their_own_marks_followed_by_whitespace(text, expected):
    assert sentences(text) == expected


@pytest.mark.parametrize("text", ["", " ", "   \n\t  \n"])
def test_empty_and_whitespace_text_has_no_sentences(text):
    assert sentence_spans(text) == []


def test_text_without_terminal_punctuation_is_one_sentence():
    text = "  the patient has had a fever for three days and a mild cough\n"
    assert sentences(text) == [text.strip()]


def test_spans_are_trimmed_ordered_and_cover_every_non_space_character():
    for text in xsum_documents(30) + ["  Leading space. Trailing space.   ", "One.\n\nTwo?\tThree!  "]:
        spans = sentence_spans(text)
        assert spans, text
        previous_end = 0
        for start, end in spans:
            assert 0 <= previous_end <= start < end <= len(text)
            piece = text[start:end]
            assert piece == piece.strip()
            # Only whitespace lies between two sentences.
            assert text[previous_end:start].strip() == ""
            previous_end = end
        assert text[previous_end:].strip() == ""


# --------------------------------------------------------------------------- word_spans


def test_word_spans_keep_raw_treebank_style_tokens():
    text = "Don't pay $1,000 at 10:30 for state-of-the-art e-mail in the U.S. (John's) -- ok?"
    tokens = [text[a:b] for a, b in word_spans(text)]
    # word_spans gives the raw words used for the verbatim comparison: contractions
    # and clitics stay attached (negation splitting happens only in TermEncoder.terms),
    # numbers with separators and hyphenated compounds stay whole, punctuation is no word.
    assert tokens == ["Don't", "pay", "1,000", "at", "10:30", "for", "state-of-the-art", "e-mail", "in", "the", "U.S", "John's", "ok"]


def test_word_spans_never_include_surrounding_punctuation():
    for text in xsum_documents(10):
        for a, b in word_spans(text):
            token = text[a:b]
            assert token and token == token.strip()
            assert token[0].isalnum() or token[0] == "_"
            assert token[-1].isalnum() or token[-1] == "_"


def test_letters_of_scripts_without_spaces_are_single_tokens_with_their_marks():
    text = "東京タワーへ行く。กินข้าว, ok? か\u3099いこく"
    tokens = [text[a:b] for a, b in word_spans(text)]
    # Han, kana and Thai letters one by one; Thai vowel and tone marks and a
    # decomposed Japanese voicing mark stay with the letter they modify.
    assert tokens == ["東", "京", "タ", "ワ", "ー", "へ", "行", "く", "กิ", "น", "ข้", "า", "ว", "ok", "か\u3099", "い", "こ", "く"]


# --------------------------------------------------------------------------- TermEncoder


def test_negation_is_split_off_as_its_own_term(encoder):
    assert encoder.terms("couldn't", 0, 8) == [term("could"), term("n't")]
    assert encoder.terms("COULDN'T", 0, 8) == [term("could"), term("n't")]
    # "do"/"ca" are too short to be terms; the negation still is one.
    assert encoder.terms("don't", 0, 5) == [term("n't")]


@pytest.mark.parametrize("clitic", ["'s", "'re", "'ve", "'ll", "'d", "'m"])
def test_clitics_are_dropped_and_the_word_kept(encoder, clitic):
    text = f"doctors{clitic} office"
    assert encoder.terms(text, 0, len(text)) == [term("doctors"), term("office")]


def test_short_tokens_and_tokens_not_starting_with_alphanumeric_are_dropped(encoder):
    text = "I am at an ox; _private __init__ it's cat 42 420"
    assert encoder.terms(text, 0, len(text)) == [term("cat"), term("420")]


def test_single_letters_of_scripts_without_spaces_are_terms(encoder):
    # The 3-character filter is for spaced scripts; a Han, kana or Thai letter counts alone.
    text = "我们 is ok 东京 กิน cat"
    assert encoder.terms(text, 0, len(text)) == [letter_term(c) for c in ["我", "们", "东", "京", "กิ", "น"]] + [term("cat")]


def test_terms_are_lowercased_and_read_only_the_given_range(encoder):
    text = "Patients RECOVERED. Hospital"
    assert encoder.terms(text, 0, 19) == [term("patients"), term("recovered")]
    assert encoder.terms(text, 20, len(text)) == [term("hospital")]


def test_snowball_stemming_is_the_default(encoder):
    forms = ["run", "running", "runs"]
    assert {encoder.terms(w, 0, len(w))[0] for w in forms} == {term("run")}
    assert encoder.terms("ran", 0, 3) != encoder.terms("run", 0, 3)
    # Snowball and Porter differ here: Snowball "fairly" -> "fair", Porter -> "fairli".
    assert encoder.terms("fairly", 0, 6) == encoder.terms("fair", 0, 4) == [term("fair")]


def test_porter_stemmer_option():
    porter = TermEncoder(stemmer="porter")
    assert porter.terms("fairly", 0, 6) == [term("fairly", PORTER)] == [word_term("fairli")]
    assert porter.terms("fairly", 0, 6) != porter.terms("fair", 0, 4)
    assert porter.terms("running", 0, 7) == porter.terms("run", 0, 3)


def test_unknown_stemmer_is_rejected():
    with pytest.raises(ValueError, match="snowball"):
        TermEncoder(stemmer="lancaster")


def test_stop_words_kept_by_default_and_removed_on_request(encoder):
    text = "The patient was not able to sleep because of the cough."
    kept = encoder.terms(text, 0, len(text))
    assert term("the") in kept and term("because") in kept and term("not") in kept
    removed = TermEncoder(remove_stopwords=True).terms(text, 0, len(text))
    assert removed == [term(w) for w in ("patient", "able", "sleep", "cough")]
    assert {"the", "was", "not", "because", "which"} <= english_stopwords()


def _kept(tokens: list[str]) -> list[str]:
    lowered = (t.lower() for t in tokens)
    return [t for t in lowered if len(t) >= 3 and t[0].isalnum()]


def test_terms_agree_with_nltk_treebank_on_news_text(encoder):
    """Spec 1.2-1.4: our tokenizer should keep (almost) the same tokens as NLTK's
    Penn Treebank tokenizer once both go through the same keep-filter and stemmer.

    Measured on the first 50 XSum documents: 0.997 of kept tokens agree. The
    remaining differences are known and harmless: Treebank splits "cannot" into
    "can" + "not"; it keeps a sentence-internal abbreviation's final period
    ("u.s." vs our "u.s"); it leaves a leading single quote on a word ("'selfie",
    then dropped by the filter, where we keep "selfie"); it keeps e-mail addresses
    and mojibake currency amounts ("â£80m") whole where we split at the symbol.
    """
    treebank = TreebankWordTokenizer()
    agreed = total = 0
    for text in xsum_documents(50):
        for start, end in sentence_spans(text):
            theirs = Counter(term(t) for t in _kept(treebank.tokenize(text[start:end])))
            ours = Counter(encoder.terms(text, start, end))
            agreed += sum((theirs & ours).values())
            total += max(sum(theirs.values()), sum(ours.values()))
    assert total > 10_000
    assert agreed / total >= 0.99


# --------------------------------------------------------------------------- preprocess


def doc_sentences(text: str, encoder: TermEncoder) -> list[str]:
    doc = preprocess(text, encoder)
    return [text[a:b] for a, b in zip(doc.starts, doc.ends)]


def test_short_sentence_is_merged_into_the_following_one(encoder):
    # "Hi there." has one term ("there"): fewer than 3, so it joins the next sentence.
    text = "Hi there. The cat sat on the mat quietly."
    assert doc_sentences(text, encoder) == [text]


def test_last_sentence_is_never_merged_forward(encoder):
    text = "The cat sat on the mat quietly. Hi there."
    assert doc_sentences(text, encoder) == ["The cat sat on the mat quietly.", "Hi there."]
    assert doc_sentences("Hi there.", encoder) == ["Hi there."]


def test_merging_repeats_while_the_merged_sentence_is_short(encoder):
    # "Yes sir." (2 terms) merges forward; a merged sentence starts at its first kept sentence.
    text = "Hi. Ok. Yes sir. The dog ran away fast."
    assert doc_sentences(text, encoder) == ["Yes sir. The dog ran away fast."]


def test_sentences_without_terms_are_dropped(encoder):
    text = "The cat sat on the mat. 42 is it. The dog ran away."
    assert doc_sentences(text, encoder) == ["The cat sat on the mat.", "The dog ran away."]
    text = "The dog ran away fast. Hi. Yes."
    # "Hi." has no term and is dropped, so "Yes." is the last sentence and stays alone.
    assert doc_sentences(text, encoder) == ["The dog ran away fast.", "Yes."]


@pytest.mark.parametrize("text", ["", "   \n ", "... !!! ?? -- ;", "I am. It is. Oh!"])
def test_text_without_terms_gives_an_empty_document(encoder, text):
    doc = preprocess(text, encoder)
    assert doc.n_sentences == 0
    assert len(doc.terms) == 0 and len(doc.ptr) == 1


def test_document_offsets_slice_the_original_text_and_keep_every_term(encoder):
    for text in xsum_documents(30):
        doc = preprocess(text, encoder)
        spans = sentence_spans(text)
        assert doc.n_sentences > 0
        assert np.all(doc.starts < doc.ends) and np.all(doc.ends[:-1] <= doc.starts[1:])
        sentence_starts = {a for a, _ in spans}
        sentence_ends = {b for _, b in spans}
        for k, (a, b) in enumerate(zip(doc.starts.tolist(), doc.ends.tolist())):
            # Merged sentences begin and end on sentence boundaries of the original text.
            assert a in sentence_starts and b in sentence_ends
            # Each sentence's term counts are the terms of its text.
            expected = Counter(encoder.terms(text, a, b))
            row = slice(doc.ptr[k], doc.ptr[k + 1])
            assert dict(zip(doc.terms[row].tolist(), doc.counts[row].tolist())) == expected
            assert doc.sizes[k] == len(expected)
            if k < doc.n_sentences - 1:
                assert sum(expected.values()) >= 3
        # No term is lost: only sentences without terms are left out.
        assert doc.counts.sum() == sum(len(encoder.terms(text, a, b)) for a, b in spans)


def test_sentence_frequencies_count_sentences_not_occurrences(encoder):
    text = "The cough cough cough got worse. The fever went away quickly. The cough returned at night."
    doc = preprocess(text, encoder)
    assert doc.n_sentences == 3
    sf = dict(zip(doc.vocab.tolist(), doc.sf.tolist()))
    assert sf[term("cough")] == 2
    assert sf[term("the")] == 3
    assert sf[term("fever")] == 1
