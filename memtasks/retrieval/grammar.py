"""Lucene 9's StandardTokenizer grammar as a deterministic automaton over character classes.

The token rules are those of Lucene's JFlex grammar (Unicode UAX #29 word
boundaries, Unicode TR #51 emoji sequences), written here over the classes of
:mod:`memtasks.retrieval.unicode`; ``X_ex`` stands for ``X`` followed by any
run of Format, Extend and ZWJ characters (UAX #29 rule WB4):

    emoji    = E (ZWJ E)* | E TagSpec+ TagTerm
             | [0-9#*] ExtSansSel* FE0F? 20E3 ExtSansSel*  | RI_ex RI_ex
      E      = ZWJ* EmojiChar ExtSansSel* FE0F? | (ZWJ* ModBase ExtSansSel*)? Modifier ExtSansSel*
    word     = ENL_ex* core (ENL_ex+ core)* ENL_ex*
      core   = Kata_ex (ENL_ex* Kata_ex)*
             | ( Hebrew_ex (SQ_ex | DQ_ex Hebrew_ex)
               | Num_ex ((ENL_ex* | MidNum_ex) Num_ex)*
               | AHLetter_ex ((ENL_ex* | MidLetter_ex) AHLetter_ex)* )+
    south-east Asian = SA_ex+;   ideograph = Han_ex;   hiragana = Hiragana_ex

(Lucene's separate number, katakana and Hangul rules only give a type to
matches of ``word``; they change no token's text and are left out.) The
scanner takes the longest match of any rule at each position and skips one
code point where none matches, as the generated Java scanner does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memtasks.retrieval.unicode import Feature, character_classes

# --- regular expressions over character classes, and their automata ----------


@dataclass(frozen=True)
class _Set:
    classes: frozenset[int]


@dataclass(frozen=True)
class _Seq:
    parts: tuple


@dataclass(frozen=True)
class _Alt:
    options: tuple


@dataclass(frozen=True)
class _Star:
    inner: object


def seq(*parts) -> _Seq:
    return _Seq(parts)


def alt(*options) -> _Alt:
    return _Alt(options)


def star(inner) -> _Star:
    return _Star(inner)


def plus(inner) -> _Seq:
    return seq(inner, star(inner))


def opt(inner) -> _Alt:
    return alt(inner, seq())


class _Nfa:
    """Thompson automaton: epsilon moves and class-set moves between numbered states."""

    def __init__(self):
        self.epsilon: list[list[int]] = []
        self.moves: list[list[tuple[frozenset[int], int]]] = []

    def state(self) -> int:
        self.epsilon.append([])
        self.moves.append([])
        return len(self.epsilon) - 1

    def build(self, node, start: int) -> int:
        """Add ``node`` from ``start``; returns its end state."""
        if isinstance(node, _Set):
            end = self.state()
            self.moves[start].append((node.classes, end))
            return end
        if isinstance(node, _Seq):
            for part in node.parts:
                start = self.build(part, start)
            return start
        if isinstance(node, _Alt):
            end = self.state()
            for option in node.options:
                entry = self.state()
                self.epsilon[start].append(entry)
                self.epsilon[self.build(option, entry)].append(end)
            return end
        if isinstance(node, _Star):
            loop, end = self.state(), self.state()
            self.epsilon[start].append(loop)
            self.epsilon[loop].append(end)
            self.epsilon[self.build(node.inner, loop)].append(loop)
            return end
        raise TypeError(node)

    def closure(self, states) -> frozenset[int]:
        seen, stack = set(states), list(states)
        while stack:
            for nxt in self.epsilon[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)


def compile_dfa(expression, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Transition table (state x class -> state, -1 = no match possible) and accepting flags; state 0 starts."""
    nfa = _Nfa()
    start = nfa.state()
    accept = nfa.build(expression, start)
    # For each state, the states each class leads to, each with its closure.
    closures = [nfa.closure([state]) for state in range(len(nfa.moves))]
    by_class = [
        [frozenset().union(*(closures[t] for classes, t in moves if c in classes)) for c in range(n_classes)]
        for moves in nfa.moves
    ]
    first = closures[start]
    index, order, rows = {first: 0}, [first], []
    while len(rows) < len(order):
        current = order[len(rows)]
        row = np.full(n_classes, -1, np.int16)
        for c in range(n_classes):
            nxt = frozenset().union(*(by_class[s][c] for s in current))
            if nxt:
                if nxt not in index:
                    index[nxt] = len(order)
                    order.append(nxt)
                row[c] = index[nxt]
        rows.append(row)
    return np.stack(rows), np.array([accept in s for s in order], np.bool_)


# --- the tokenizer's rules ----------------------------------------------------


def _rules(where: Callable[[Callable[[Feature], bool]], _Set]):
    def wb(*values: str) -> _Set:
        return where(lambda f: f.word_break in values)

    def literal(name: str) -> _Set:
        return where(lambda f: f.literal == name)

    ext = star(wb("Format", "Extend", "ZWJ"))
    ext_sans_selectors = star(where(
        lambda f: f.word_break in ("Format", "Extend", "ZWJ")
        and f.literal not in ("emoji_presentation", "text_presentation")
    ))
    zwj = wb("ZWJ")
    emoji_char = where(lambda f: f.has("Binary_Property/Extended_Pictographic") or (
        f.has("Binary_Property/Emoji")
        and f.word_break != "Regional_Indicator"
        and f.literal not in ("keycap_base", "accidental_emoji")
        and not f.has("Binary_Property/Emoji_Modifier")
    ))
    modifier = seq(where(lambda f: f.has("Binary_Property/Emoji_Modifier")), ext_sans_selectors)
    modifier_base = seq(where(lambda f: f.has("Binary_Property/Emoji_Modifier_Base")), ext_sans_selectors)
    element = alt(
        seq(star(zwj), emoji_char, ext_sans_selectors, opt(literal("emoji_presentation"))),
        seq(opt(seq(star(zwj), modifier_base)), modifier),
    )
    regional = seq(wb("Regional_Indicator"), ext)
    emoji = alt(
        seq(element, alt(star(seq(zwj, element)), seq(plus(literal("tag_spec")), literal("tag_term")))),
        seq(literal("keycap_base"), ext_sans_selectors, opt(literal("emoji_presentation")),
            literal("keycap"), ext_sans_selectors),
        seq(regional, regional),
    )

    def ex(node) -> _Seq:
        return seq(node, ext)

    ahletter = ex(wb("ALetter", "Hebrew_Letter"))
    hebrew = ex(wb("Hebrew_Letter"))
    numeric = ex(wb("Numeric"))
    katakana = ex(wb("Katakana"))
    extend_num_let = ex(wb("ExtendNumLet"))
    mid_letter = ex(wb("MidLetter", "MidNumLet", "Single_Quote"))
    mid_numeric = ex(wb("MidNum", "MidNumLet", "Single_Quote"))
    core = alt(
        seq(katakana, star(seq(star(extend_num_let), katakana))),
        plus(alt(
            seq(hebrew, alt(ex(wb("Single_Quote")), seq(ex(wb("Double_Quote")), hebrew))),
            seq(numeric, star(seq(alt(star(extend_num_let), mid_numeric), numeric))),
            seq(ahletter, star(seq(alt(star(extend_num_let), mid_letter), ahletter))),
        )),
    )
    word = seq(star(extend_num_let), core, star(seq(plus(extend_num_let), core)), star(extend_num_let))
    south_east_asian = plus(ex(where(lambda f: f.has("Line_Break/Complex_Context"))))
    ideograph = ex(where(lambda f: f.has("Script/Han")))
    hiragana = ex(where(lambda f: f.has("Script/Hiragana")))
    return alt(emoji, word, south_east_asian, ideograph, hiragana)


@lru_cache(maxsize=1)
def token_automaton() -> tuple[np.ndarray, np.ndarray]:
    """The deterministic automaton of all token rules: (transitions, accepting)."""
    features = character_classes().features

    def where(test: Callable[[Feature], bool]) -> _Set:
        return _Set(frozenset(i for i, feature in enumerate(features) if test(feature)))

    return compile_dfa(_rules(where), len(features))
