"""Tests for "no blind spots for copies" (spec section 11, points 1 and 2).

A common run of at least ``verbatim_minlen`` characters between the training
suffix (suspicious) and the generation (source) is verbatim even when nothing
seeds, and texts written without spaces (Chinese, Japanese, Thai) are split on
their own sentence marks and compared character by character.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from memtasks.detection import Alignment, Detector, sentence_spans, word_spans
from memtasks.detection.kernels import (
    INDEX_NGRAM, UNITS_PER_CHAR, UNITS_PER_UNSPACED_LETTER, WORD_END, WORD_REACH, WORD_START, common_runs, ngram_index,
)
from memtasks.detection.text import _UNSPACED_LETTER
from memtasks.probes import make_probes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MINLEN = 50  # verbatim_minlen of the memorization preset


@pytest.fixture(scope="module")
def detector() -> Detector:
    detector = Detector("memorization")
    assert detector.config.verbatim_minlen == MINLEN
    return detector


def copied_pieces(alignment: Alignment, susp: str, src: str) -> list[tuple[str, str]]:
    return [(susp[d.susp_start : d.susp_end], src[d.src_start : d.src_end]) for d in alignment.detections]


def words(text: str) -> list[str]:
    """Lowercased words, punctuation dropped: an independent view of the comparison of spec 6.1."""
    return re.findall(r"\w+", text.lower())


# --------------------------------------------------------------------------- one-sentence copies of real text


@pytest.fixture(scope="module")
def wmt_suffixes() -> dict[str, list[str]]:
    """The suffixes of the WMT22 records, cut as ``make_probes(records, field, prefix_tokens=15)``
    cuts them, in English and German: mostly one sentence each."""
    path = DATA / "wmt22_en_de.jsonl"
    if not path.exists():
        pytest.skip(f"real text sample {path} is not available")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {field: [p.suffix for p in make_probes(records, field, prefix_tokens=15, n=None).probes] for field in ("en", "de")}


@pytest.mark.parametrize("field", ["en", "de"])
def test_exact_copies_of_real_one_sentence_suffixes_are_verbatim(detector, wmt_suffixes, field):
    suffixes = [s for s in wmt_suffixes[field] if len(s) >= MINLEN]
    assert len(suffixes) >= 400
    # Generations: the suffix itself, and the suffix after, before and inside unrelated text.
    rng = random.Random(0)
    others = wmt_suffixes[field][:60]
    generations = {"exact": list(suffixes), "after text": [], "before text": [], "inside text": []}
    for suffix in suffixes:
        before, after = rng.sample([s for s in others if s != suffix], 2)
        generations["after text"].append(f"{before} {suffix}")
        generations["before text"].append(f"{suffix} {after}")
        generations["inside text"].append(f"{before} {suffix} {after}")
    n = len(suffixes)
    texts = suffixes + [g for kind in generations.values() for g in kind]
    pairs = [(i, n * (1 + k) + i) for k in range(len(generations)) for i in range(n)]
    alignments = detector.align_pairs(texts, pairs)
    for k, label in enumerate(generations):
        found = sum(a.category == "verbatim" for a in alignments[k * n : (k + 1) * n])
        assert found >= 0.99 * n, f"{label}: {found} of {n} copies of {field} suffixes are verbatim"
    for (s, g), alignment in zip(pairs, alignments):
        # A verbatim pair's detections are the copied runs (a paraphrase's are sentence spans).
        if alignment.category != "verbatim":
            continue
        for in_suffix, in_generation in copied_pieces(alignment, texts[s], texts[g]):
            assert words(in_suffix) == words(in_generation)
            assert len(in_suffix) >= MINLEN


def test_long_english_single_sentence_copy_is_verbatim_over_the_whole_sentence(detector):
    sentence = (
        "The committee agreed on Tuesday evening that the old maternity unit at the county hospital would close "
        "next spring and that all births would move to the new regional centre, which opened late last year near the ring road junction."
    )
    assert len(sentence) == 230 and len(sentence_spans(sentence)) == 1
    alignment = detector.align(sentence, sentence)
    assert alignment.category == "verbatim"
    # The run goes from the first word to the last (the final period is no word).
    assert copied_pieces(alignment, sentence, sentence) == [(sentence[:-1], sentence[:-1])]


# --------------------------------------------------------------------------- the rule's edges


def shared_run_pair(run: str) -> tuple[str, str]:
    """Two one-sentence texts sharing exactly ``run`` (the words around it differ)."""
    return f"Yesterday morning {run} before the storm.", f"Reports said {run} after lunch."


def test_a_run_of_verbatim_minlen_characters_is_verbatim_and_one_character_less_is_not(detector):
    run = "the small boat drifted slowly toward the east pier"
    assert len(run) == MINLEN
    suffix, generation = shared_run_pair(run)
    alignment = detector.align(suffix, generation)
    assert alignment.category == "verbatim"
    assert copied_pieces(alignment, suffix, generation) == [(run, run)]

    shorter = "the small boat drifted slowly toward the old pier"
    assert len(shorter) == MINLEN - 1
    # Not a copy; the sentences still share most of their words, so they align as a paraphrase.
    assert detector.align(*shared_run_pair(shorter)).category == "paraphrase"


def longest_common_run(a: str, b: str) -> int:
    """Characters (in ``a``) of the longest run of identical consecutive words of
    ``a`` and ``b``, by dynamic programming over the word grid."""
    spans_a = [(m.group().lower(), m.start(), m.end()) for m in re.finditer(r"\w+", a)]
    words_b = words(b)
    best = 0
    previous = [0] * (len(words_b) + 1)
    for i, (word, _, end) in enumerate(spans_a):
        current = [0] * (len(words_b) + 1)
        for j, other in enumerate(words_b):
            if word == other:
                current[j + 1] = previous[j] + 1
                best = max(best, end - spans_a[i - current[j + 1] + 1][1])
        previous = current
    return best


def test_unrelated_real_texts_are_verbatim_only_when_they_share_a_long_run(detector, wmt_suffixes):
    # Every suffix against the suffixes of three other records. Customer-service
    # boilerplate does recur in WMT22, so a few pairs really share a long run.
    suffixes = wmt_suffixes["en"]
    pairs = [(i, (i + shift) % len(suffixes)) for i in range(len(suffixes)) for shift in (1, 7, 101)]
    alignments = detector.align_pairs(suffixes, pairs)
    verbatim = 0
    for (s, g), alignment in zip(pairs, alignments):
        longest = longest_common_run(suffixes[s], suffixes[g])
        if alignment.category == "verbatim":
            verbatim += 1
            assert longest >= MINLEN - 5, (suffixes[s], suffixes[g])
            for in_suffix, in_generation in copied_pieces(alignment, suffixes[s], suffixes[g]):
                assert words(in_suffix) == words(in_generation) and len(in_suffix) >= MINLEN
        elif longest >= MINLEN + 5:
            pytest.fail(f"a common run of {longest} characters was missed: {suffixes[s]!r} / {suffixes[g]!r}")
    assert verbatim < 0.05 * len(pairs)


# --------------------------------------------------------------------------- the compiled search for runs


def reference_runs(ids_s, starts_s, ends_s, ids_g, lo_s, hi_s, lo_g, hi_g, minlen, unspaced_s=None) -> set[tuple[int, int, int, int]]:
    """Maximal common runs by dynamic programming over the whole grid (quadratic, obviously right).

    With ``unspaced_s`` (a flag per word of the first side), a run's length counts
    each such word, a letter of a script written without spaces, as 10/3 characters."""

    def length_of(first: int, last: int) -> float:
        chars = ends_s[last] - starts_s[first]
        if unspaced_s is None:
            return chars
        letters = sum(unspaced_s[first : last + 1])
        return chars - letters + letters * 10 / 3

    found = set()
    for i in range(lo_s, hi_s):
        for j in range(lo_g, hi_g):
            if ids_s[i] != ids_g[j] or (i > lo_s and j > lo_g and ids_s[i - 1] == ids_g[j - 1]):
                continue
            length = 0
            while i + length < hi_s and j + length < hi_g and ids_s[i + length] == ids_g[j + length]:
                length += 1
            if length_of(i, i + length - 1) >= minlen - 1e-9:
                found.add((i, i + length - 1, j, j + length - 1))
    return found


def word_array(ids: list[int], rng: random.Random, unspaced: float = 0.0) -> tuple[np.ndarray, list[bool]]:
    """Words with the given ids, random lengths (sometimes very long) and gaps, and
    their reach; a share ``unspaced`` of them are single letters of an unspaced script
    (no gap before them half the time), flagged in the list returned with the array."""
    rows, flags, position, reach = [], [], 0, 0
    for word in ids:
        letter = rng.random() < unspaced
        if letter and rng.random() < 0.5 and rows:
            position = rows[-1][2]
        length = 1 if letter else rng.choice([1, 2, 3, 5, 8, 40])
        gap = position - (rows[-1][2] if rows else 0)
        reach += UNITS_PER_CHAR * gap + (UNITS_PER_UNSPACED_LETTER if letter else UNITS_PER_CHAR * length)
        rows.append((word, position, position + length, reach))
        flags.append(letter)
        position += length + rng.choice([1, 1, 2, 6])
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4), flags


def test_common_runs_equal_the_quadratic_reference_on_random_sequences():
    rng = random.Random(1)
    checked_runs = 0
    for trial in range(400):
        alphabet = rng.choice([2, 3, 5, 50])
        n, m = rng.randint(0, 60), rng.randint(0, 60)
        ids_s = [rng.randrange(alphabet) for _ in range(n)]
        # Half the time the second sequence holds pieces of the first.
        ids_g = [rng.randrange(alphabet) for _ in range(m)]
        if trial % 2 and n:
            start, at = rng.randrange(n), rng.randint(0, m)
            ids_g[at:at] = ids_s[start : start + rng.randint(1, 30)]
        # A third of the trials mix in letters of unspaced scripts (spec 11.7).
        share = rng.choice([0.3, 1.0]) if trial % 3 == 1 else 0.0
        (words_s, unspaced_s), (words_g, _) = word_array(ids_s, rng, share), word_array(ids_g, rng, share)
        lo_s, hi_s = sorted(rng.choices(range(len(ids_s) + 1), k=2)) if trial % 3 == 0 else (0, len(ids_s))
        lo_g, hi_g = sorted(rng.choices(range(len(ids_g) + 1), k=2)) if trial % 3 == 0 else (0, len(ids_g))
        minlen = rng.choice([1, 10, 30, 50, 120])
        found = common_runs(
            words_s, ngram_index(words_s, 0, len(words_s), INDEX_NGRAM), lo_s, hi_s,
            words_g, ngram_index(words_g, 0, len(words_g), INDEX_NGRAM), lo_g, hi_g, minlen,
        )
        expected = reference_runs(ids_s, words_s[:, 1], words_s[:, 2], ids_g, lo_s, hi_s, lo_g, hi_g, minlen, unspaced_s)
        assert sorted(map(tuple, found.tolist())) == sorted(expected), (trial, minlen)
        checked_runs += len(expected)
    assert checked_runs > 500


def test_repetitive_one_sentence_texts_are_aligned(detector):
    # Degenerate generations repeat themselves, so every n-gram recurs hundreds of
    # times on both sides; without punctuation each text is one sentence and only
    # the comparison of whole texts (spec 11.1) can find the copy.
    phrase = "the model repeats the same few words over and over "
    suffix = phrase * 300
    generation = "intro words here " + phrase * 150
    alignment = detector.align(suffix, generation)
    assert alignment.category == "verbatim"
    (in_suffix, in_generation), = copied_pieces(alignment, suffix, generation)
    assert in_suffix == in_generation == (phrase * 150).strip()


# --------------------------------------------------------------------------- scripts written without spaces

ZH_HEALTH = (
    "昨天下午，市卫生局召开新闻发布会，通报了今年第一季度的传染病防控情况。"
    "据介绍，流感病例比去年同期下降了百分之十五，但儿童手足口病的发病率略有上升。"
    "专家提醒家长，要注意孩子的个人卫生，勤洗手、多通风。"
    "如果孩子出现发热或皮疹，应及时到医院就诊！"
)
ZH_NOODLES = (
    "这家位于江南古镇的小面馆已经开了三十多年。"
    "老板每天凌晨四点起床熬汤，用的是自家养的土鸡和新鲜的猪骨。"
    "每到周末，门口总是排起长队，很多游客专程从外地赶来。"
    "你吃过他们家的招牌阳春面吗？味道清淡却回味悠长。"
)
ZH_RAIL = (
    "新建的高速铁路全长四百多公里，设计时速三百五十公里。"
    "通车以后，两座城市之间的旅行时间将从五个小时缩短到一个半小时。"
    "沿线的十几个县市也将因此受益，当地政府正在规划新的产业园区。"
)
JA_DISASTER = (
    "東京都は昨日、新しい防災計画を発表しました。"
    "この計画では、大地震が発生した場合に備えて、避難所の数を二倍に増やすことが盛り込まれています。"
    "また、高齢者や障害のある人のための支援体制も強化されます。"
    "都の担当者は「住民一人一人が日頃から備えることが大切です」と話しています。"
)
JA_TRAVEL = (
    "週末に友人と京都へ旅行に行きました。"
    "朝早く出発して、昼前には清水寺に着きました。"
    "紅葉がとてもきれいで、たくさんの写真を撮りました。"
    "夜は老舗の旅館に泊まり、温かい湯豆腐を食べました。また来年も行きたいと思います！"
)
TH_WEATHER = (
    "กรมอุตุนิยมวิทยาประกาศเตือนว่าจะมีฝนตกหนักในภาคใต้ตลอดสัปดาห์นี้ "
    "ประชาชนที่อาศัยอยู่ในพื้นที่ลุ่มต่ำควรเตรียมพร้อมรับมือกับน้ำท่วม "
    "และติดตามข่าวสารจากทางราชการอย่างใกล้ชิด"
)
TH_CAFE = (
    "ร้านกาแฟเล็กๆ แห่งนี้ตั้งอยู่ริมแม่น้ำเจ้าพระยา "
    "มีบรรยากาศเงียบสงบเหมาะสำหรับการนั่งอ่านหนังสือ "
    "เจ้าของร้านคั่วเมล็ดกาแฟเองทุกเช้า"
)


@pytest.mark.parametrize("text, n_sentences", [(ZH_HEALTH, 4), (ZH_NOODLES, 5), (JA_DISASTER, 4), (JA_TRAVEL, 5)], ids=["zh", "zh-2", "ja", "ja-2"])
def test_unspaced_texts_split_into_sentences_on_their_own_marks(text, n_sentences):
    spans = sentence_spans(text)
    assert len(spans) == n_sentences
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(text[b - 1] in "。！？」" for _, b in spans)


@pytest.mark.parametrize("text", [ZH_HEALTH, ZH_RAIL, JA_DISASTER, JA_TRAVEL, TH_WEATHER], ids=["zh", "zh-2", "ja", "ja-2", "th"])
def test_exact_copy_of_unspaced_text_is_verbatim_and_slices_back(detector, text):
    assert len(text) >= MINLEN
    alignment = detector.align(text, text)
    assert alignment.category == "verbatim"
    # The run covers the text from its first to its last letter (a final mark is no word).
    assert copied_pieces(alignment, text, text) == [(text.rstrip("。！？"), text.rstrip("。！？"))]


@pytest.mark.parametrize("text", [ZH_HEALTH, JA_DISASTER], ids=["zh", "ja"])
def test_copied_sentences_inside_other_unspaced_text_are_found(detector, text):
    spans = sentence_spans(text)
    copied = text[spans[1][0] : spans[2][1]]
    generation = "以下是相关报道。" + copied + "更多信息请关注后续新闻。"
    alignment = detector.align(text, generation)
    assert alignment.category == "verbatim"
    pieces = copied_pieces(alignment, text, generation)
    assert all(in_text == in_generation for in_text, in_generation in pieces)
    assert "".join(in_text for in_text, _ in pieces) == copied[:-1]


@pytest.mark.parametrize(
    "suffix, generation",
    [(ZH_HEALTH, ZH_NOODLES), (ZH_NOODLES, ZH_HEALTH), (ZH_HEALTH, ZH_RAIL), (ZH_RAIL, ZH_NOODLES),
     (JA_DISASTER, JA_TRAVEL), (JA_TRAVEL, JA_DISASTER), (TH_WEATHER, TH_CAFE), (TH_CAFE, TH_WEATHER)],
    ids=["zh-1", "zh-2", "zh-3", "zh-4", "ja-1", "ja-2", "th-1", "th-2"],
)
def test_unrelated_unspaced_texts_are_none(detector, suffix, generation):
    assert detector.align(suffix, generation).category == "none"


def test_unspaced_letters_are_tokens_and_terms_of_their_own(detector):
    text = "我们去公园 ok, 東京タワーへ. กิน"
    tokens = [text[a:b] for a, b in word_spans(text)]
    # Han, kana and Thai letters one by one, a Thai vowel sign kept with its consonant;
    # the spaced-script word "ok" is a token too.
    assert tokens == ["我", "们", "去", "公", "园", "ok", "東", "京", "タ", "ワ", "ー", "へ", "กิ", "น"]
    document = detector.preprocess(text)
    # Every single letter is a term; "ok" (2 characters) is not.
    assert sum(document.counts) == len(tokens) - 1


# --------------------------------------------------------------------------- the same threshold in every script (spec 11.7)

# One sentence of 44 characters (41 Han letters), about 30 tokens: an exact copy
# is far more than the study's "50 characters (approximately 15 tokens)".
ZH_44 = "去年秋天，这座沿海城市的居民自发组织起来清理海滩上的塑料垃圾，一共收集了两吨多塑料瓶子。"
JA_36 = "昨日の夜、駅前の小さな本屋で、子どもの頃に読んだ絵本を偶然見つけました。"
TH_45 = "วัสดุชนิดใหม่นี้นำไฟฟ้าได้ดีแม้อุณหภูมิต่ำมาก"


@pytest.mark.parametrize("sentence, length", [(ZH_44, 44), (JA_36, 36), (TH_45, 45)], ids=["zh", "ja", "th"])
def test_exact_copy_of_a_short_unspaced_sentence_is_verbatim(detector, sentence, length):
    # Fewer than verbatim_minlen characters, but each letter is a word-sized unit.
    assert len(sentence) == length < MINLEN and len(sentence_spans(sentence)) == 1
    alignment = detector.align(sentence, sentence)
    assert alignment.category == "verbatim"
    copied = sentence.rstrip("。")
    assert copied_pieces(alignment, sentence, sentence) == [(copied, copied)]


def zh_shared_run_pair(run: str) -> tuple[str, str]:
    """Two one-sentence Chinese texts sharing exactly ``run`` (the letters around it differ)."""
    return f"据昨天上午的消息{run}，大家都很高兴。", f"记者报道说{run}，引起了广泛关注。"


def test_a_run_of_15_han_letters_is_verbatim_and_shorter_common_runs_are_not(detector):
    # 15 letters x 10/3 = 50 characters' worth: the threshold, met exactly.
    run = "这座沿海城市的居民自发组织起来"
    assert len(run) == 15
    suffix, generation = zh_shared_run_pair(run)
    alignment = detector.align(suffix, generation)
    assert alignment.category == "verbatim"
    assert copied_pieces(alignment, suffix, generation) == [(run, run)]
    # 14 letters are 46.7 characters' worth: not a copy.
    alignment = detector.align(*zh_shared_run_pair(run[:-1]))
    assert alignment.category != "verbatim"
    # A common phrase of a few letters between two unrelated sentences is a coincidence.
    coincidence = ("我们昨天在公园里散步的时候看见了一只非常可爱的小狗。", "今天早上我在公园里散步的时候遇到了一位多年未见的老朋友。")
    assert "在公园里散步的时候" in coincidence[0] and "在公园里散步的时候" in coincidence[1]
    assert detector.align(*coincidence).category != "verbatim"
    for suffix, generation in [(ZH_HEALTH, ZH_NOODLES), (JA_DISASTER, JA_TRAVEL), (TH_WEATHER, TH_CAFE)]:
        assert detector.align(suffix, generation).category != "verbatim"


@pytest.mark.parametrize(
    "run, shorter",
    [("the small boat drifted slowly toward the east pier", "the small boat drifted slowly toward the old pier"),
     ("die kleine Fähre trieb langsam zum Anleger am Ufer", "die kleine Fähre trieb langsam zum Anleger am See")],
    ids=["en", "de"],
)
def test_spaced_scripts_still_measure_characters(detector, run, shorter, wmt_suffixes):
    # English and German: 50 characters are verbatim, 49 are not, exactly as before.
    assert len(run) == MINLEN and len(shorter) == MINLEN - 1
    suffix, generation = shared_run_pair(run)
    assert copied_pieces(detector.align(suffix, generation), suffix, generation) == [(run, run)]
    assert detector.align(*shared_run_pair(shorter)).category != "verbatim"
    # The measured length of every stretch of words of real English and German text
    # is its number of characters (in thirds).
    for text in wmt_suffixes["en"][:300] + wmt_suffixes["de"][:300] + [ZH_HEALTH + " Hello world."]:
        words = detector.preprocess(text).words
        latin = np.array([_UNSPACED_LETTER.match(text, a) is None for a in words[:, WORD_START]])
        if latin.all():
            assert (words[:, WORD_REACH] == UNITS_PER_CHAR * words[:, WORD_END].astype(np.int64)).all()
        else:
            # Mixed text: the Latin words' own lengths are still their characters.
            steps = np.diff(words[:, WORD_REACH], prepend=0) - UNITS_PER_CHAR * (
                words[:, WORD_START] - np.concatenate([[0], words[:-1, WORD_END]])
            )
            lengths = words[:, WORD_END] - words[:, WORD_START]
            assert (steps[latin] == UNITS_PER_CHAR * lengths[latin]).all()
            assert (steps[~latin] == UNITS_PER_UNSPACED_LETTER).all()
