"""PAN text-alignment corpora and the PAN text-alignment measure.

Corpus layout (as in the PAN 2013/2014 text-alignment corpora)::

    pairs                         "suspicious-documentXXXXX.txt source-documentYYYYY.txt" per line
    src/, susp/                   the document texts
    NN-<obfuscation>/pairs        the pairs of that obfuscation folder
    NN-<obfuscation>/suspicious-documentXXXXX-source-documentYYYYY.xml
                                  truth: <feature name="plagiarism" this_offset= this_length=
                                  source_reference= source_offset= source_length= .../>

Offsets are character offsets into the decoded UTF-8 texts; ``this_*`` refers to the
suspicious document.

The measure follows Potthast et al. (2010), "An Evaluation Framework for Plagiarism
Detection", as used in the PAN 2013/2014 text-alignment tasks; see :func:`pan_scores`.
"""

from __future__ import annotations

import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from memtasks.detection import Detector

__all__ = [
    "Case",
    "PanEvaluation",
    "evaluate_corpus",
    "PanCorpusError",
    "PanPair",
    "PanScores",
    "pan_scores",
    "read_corpus",
    "read_text",
    "scores_by_obfuscation",
]

# Obfuscation folders are named like "01-no-plagiarism"; anything else (src/, susp/, or a
# derived folder such as "all/") is not one.
_FOLDER_RE = re.compile(r"^\d+-")


class PanCorpusError(ValueError):
    """A PAN corpus directory is missing a file or contains a malformed one."""


@dataclass(frozen=True)
class Case:
    """A plagiarism case or a detection: ``[susp_start, susp_end)`` in the suspicious
    document aligned with ``[src_start, src_end)`` in the source document (character
    offsets, end exclusive)."""

    susp_start: int
    susp_end: int
    src_start: int
    src_end: int

    def __post_init__(self) -> None:
        if not (0 <= self.susp_start <= self.susp_end and 0 <= self.src_start <= self.src_end):
            raise ValueError(f"invalid ranges in {self!r}")

    @property
    def size(self) -> int:
        """|s|: the number of character positions on both sides together."""
        return (self.susp_end - self.susp_start) + (self.src_end - self.src_start)


@dataclass(frozen=True)
class PanPair:
    """One (suspicious, source) document pair of a corpus with its true cases.

    ``susp`` and ``src`` are file names (e.g. ``"suspicious-document00005.txt"``),
    ``obfuscation`` the folder the pair belongs to (e.g. ``"02-no-obfuscation"``).
    """

    susp: str
    src: str
    obfuscation: str
    cases: tuple[Case, ...]

    @property
    def key(self) -> tuple[str, str]:
        """``(susp, src)``, the key used for detections."""
        return (self.susp, self.src)


@dataclass(frozen=True)
class PanScores:
    """PAN text-alignment scores of a set of detections."""

    precision: float
    recall: float
    granularity: float
    plagdet: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# --------------------------------------------------------------------------- corpus


def _read_pairs_file(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise PanCorpusError(f"{path}: pairs file is missing")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise PanCorpusError(f"{path}:{lineno}: expected 'SUSP SRC', got {line.strip()!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


def _truth_path(folder: Path, susp: str, src: str) -> Path:
    return folder / f"{Path(susp).stem}-{Path(src).stem}.xml"


def _int_attr(feature: ET.Element, name: str, path: Path) -> int:
    try:
        return int(feature.attrib[name])
    except KeyError:
        raise PanCorpusError(f"{path}: plagiarism feature lacks attribute {name!r}") from None
    except ValueError:
        raise PanCorpusError(
            f"{path}: attribute {name}={feature.attrib[name]!r} is not an integer"
        ) from None


def _read_truth(path: Path, susp: str, src: str) -> tuple[Case, ...]:
    if not path.is_file():
        raise PanCorpusError(f"{path}: truth XML is missing")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise PanCorpusError(f"{path}: unreadable XML ({err})") from None
    if root.get("reference") not in (None, susp):
        raise PanCorpusError(f"{path}: document reference {root.get('reference')!r} != {susp!r}")
    cases = []
    # Only name="plagiarism" features are cases; summary-obfuscation files also carry
    # "about" and "md5" features.
    for feature in root.iter("feature"):
        if feature.get("name") != "plagiarism":
            continue
        if feature.get("source_reference") not in (None, src):
            raise PanCorpusError(
                f"{path}: source_reference {feature.get('source_reference')!r} != {src!r}"
            )
        t_off, t_len = _int_attr(feature, "this_offset", path), _int_attr(feature, "this_length", path)
        s_off, s_len = _int_attr(feature, "source_offset", path), _int_attr(feature, "source_length", path)
        try:
            cases.append(Case(t_off, t_off + t_len, s_off, s_off + s_len))
        except ValueError:
            raise PanCorpusError(f"{path}: negative offset or length in a plagiarism feature") from None
    return tuple(cases)


def read_corpus(corpus_dir: str | Path) -> list[PanPair]:
    """Read a PAN text-alignment corpus, in the order of its top-level ``pairs`` file.

    Each pair is assigned to the obfuscation folder (``NN-name``) whose own ``pairs``
    file lists it; its cases come from that folder's truth XML. Texts are not read here
    (see :func:`read_text`), but their files must exist.

    Raises:
        PanCorpusError: a ``pairs`` file, folder, text or truth XML is missing or
            malformed, or a pair is listed in no folder or in several.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise PanCorpusError(f"{root}: corpus directory does not exist")
    top_path = root / "pairs"
    top = _read_pairs_file(top_path)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _FOLDER_RE.match(p.name))
    if not folders:
        raise PanCorpusError(f"{root}: no obfuscation folders (NN-name/) found")

    folder_of: dict[tuple[str, str], Path] = {}
    for folder in folders:
        for pair in _read_pairs_file(folder / "pairs"):
            if pair in folder_of:
                raise PanCorpusError(
                    f"{folder / 'pairs'}: pair {' '.join(pair)} is also listed in {folder_of[pair].name}"
                )
            folder_of[pair] = folder

    result = []
    seen = set()
    for susp, src in top:
        if (susp, src) in seen:
            raise PanCorpusError(f"{top_path}: pair {susp} {src} is listed twice")
        seen.add((susp, src))
        folder = folder_of.get((susp, src))
        if folder is None:
            raise PanCorpusError(f"{top_path}: pair {susp} {src} is in no obfuscation folder")
        for kind, name in (("susp", susp), ("src", src)):
            if not (root / kind / name).is_file():
                raise PanCorpusError(f"{root / kind / name}: text file is missing")
        cases = _read_truth(_truth_path(folder, susp, src), susp, src)
        result.append(PanPair(susp, src, folder.name, cases))
    return result


def read_text(corpus_dir: str | Path, name: str, kind: Literal["susp", "src"]) -> str:
    """Return the text of document ``name`` from ``corpus_dir/kind/``.

    Decoded as strict UTF-8 with ``newline=""`` (no newline translation), so that string
    indices are the character offsets the truth XML uses.
    """
    if kind not in ("susp", "src"):
        raise ValueError(f"kind must be 'susp' or 'src', not {kind!r}")
    path = Path(corpus_dir) / kind / name
    # newline="": PAN's offsets count every character of the file, a "\r" included (the
    # corpus was produced with Java and PAN's Python tools read via codecs.open, which
    # translates nothing). The pan13 training texts contain no "\r" at all, so both modes
    # agree there; with "\r\n" files the default universal-newline mode would shift every
    # later offset. Checked on pan13-train: no truth range runs past its text, and all
    # 1252 no-obfuscation cases slice to equal-length passages that are identical up to
    # whitespace (line breaks) in the two documents.
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise PanCorpusError(f"{path}: text file is missing") from None
    except UnicodeDecodeError as err:
        raise PanCorpusError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


# --------------------------------------------------------------------------- measure


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    """Whether [a0, a1) and [b0, b1) share at least one position."""
    return max(a0, b0) < min(a1, b1)


def _detects(r: Case, s: Case) -> bool:
    """r detects s: they share positions in the suspicious AND in the source document."""
    return _overlaps(s.susp_start, s.susp_end, r.susp_start, r.susp_end) and _overlaps(
        s.src_start, s.src_end, r.src_start, r.src_end
    )


def _union_length(intervals: list[tuple[int, int]]) -> int:
    """Number of positions covered by the union of half-open intervals."""
    total, cur_start, cur_end = 0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def _covered(target: Case, others: list[Case]) -> int:
    """|⋃_o (target ⊓ o)|: positions of target shared with any of others, both sides."""
    susp = [(max(target.susp_start, o.susp_start), min(target.susp_end, o.susp_end)) for o in others]
    src = [(max(target.src_start, o.src_start), min(target.src_end, o.src_end)) for o in others]
    return _union_length([iv for iv in susp if iv[0] < iv[1]]) + _union_length(
        [iv for iv in src if iv[0] < iv[1]]
    )


def pan_scores(
    pairs: Sequence[PanPair], detections: Mapping[tuple[str, str], Sequence[Case]]
) -> PanScores:
    """PAN text-alignment precision, recall, granularity and plagdet.

    A case s (true) and a detection r are sets of character positions in the
    suspicious and the source document of one pair, |s| = susp chars + src chars.
    r *detects* s when their suspicious ranges overlap and their source ranges overlap;
    s ⊓ r is then the positions they share (both sides), and is empty otherwise.
    With S all cases and R all detections of ``pairs`` (macro-averaged over the whole
    set, not per pair)::

        recall      = 1/|S|   Σ_{s∈S} |⋃_{r∈R} (s ⊓ r)| / |s|
        precision   = 1/|R|   Σ_{r∈R} |⋃_{s∈S} (s ⊓ r)| / |r|
        granularity = 1/|S_R| Σ_{s∈S_R} |R_s|     (1 when S_R is empty)
        plagdet     = F1 / log2(1 + granularity)

    where S_R = cases detected by at least one detection, R_s = detections that detect
    s, and F1 = 2PR / (P + R) (0 when P = R = 0).

    Edge cases (the convention of PAN's evaluation script): an average over an empty
    set is 1 if S and R are *both* empty, and 0 otherwise. So no cases and no
    detections give precision = recall = granularity = plagdet = 1 (nothing to find,
    nothing falsely claimed); cases but no detections, or detections but no cases,
    give precision = recall = plagdet = 0 and granularity 1.

    ``detections`` maps ``(susp, src)`` file names to that pair's detections.
    Detections of a pair without cases count against precision; detections of pairs
    not in ``pairs`` are ignored. Duplicate detections count separately, as in PAN.

    Raises:
        ValueError: ``pairs`` lists a pair twice, or a detection has zero length on
            both sides (|r| = 0 makes its precision undefined).
    """
    n_cases = n_dets = n_detected = n_detect_links = 0
    recall_sum = precision_sum = 0.0
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        if pair.key in seen:
            raise ValueError(f"pair {pair.susp} {pair.src} is given twice")
        seen.add(pair.key)
        cases = pair.cases
        dets = list(detections.get(pair.key, ()))
        for r in dets:
            if r.size == 0:
                raise ValueError(f"empty detection {r!r} in pair {pair.susp} {pair.src}")
        n_cases += len(cases)
        n_dets += len(dets)
        # Cases and detections per pair are few, so the pairwise test is cheap; the
        # unions are interval merges rather than sets of positions.
        for s in cases:
            hits = [r for r in dets if _detects(r, s)]
            if hits:
                n_detected += 1
                n_detect_links += len(hits)
                recall_sum += _covered(s, hits) / s.size
        for r in dets:
            hits = [s for s in cases if _detects(r, s)]
            if hits:
                precision_sum += _covered(r, hits) / r.size

    if n_cases == 0 and n_dets == 0:
        return PanScores(precision=1.0, recall=1.0, granularity=1.0, plagdet=1.0)
    recall = recall_sum / n_cases if n_cases else 0.0
    precision = precision_sum / n_dets if n_dets else 0.0
    granularity = n_detect_links / n_detected if n_detected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    plagdet = f1 / math.log2(1 + granularity)
    return PanScores(precision=precision, recall=recall, granularity=granularity, plagdet=plagdet)


def scores_by_obfuscation(
    pairs: Sequence[PanPair], detections: Mapping[tuple[str, str], Sequence[Case]]
) -> dict[str, PanScores]:
    """:func:`pan_scores` separately for each obfuscation folder, keyed by folder name
    (sorted).

    Each folder is averaged over its own cases and detections. A folder without cases
    (``01-no-plagiarism``) follows the edge-case convention of :func:`pan_scores`: all
    scores 1 if it has no detections either, else precision = recall = plagdet = 0 and
    granularity 1.
    """
    groups: dict[str, list[PanPair]] = {}
    for pair in pairs:
        groups.setdefault(pair.obfuscation, []).append(pair)
    return {name: pan_scores(groups[name], detections) for name in sorted(groups)}


@dataclass(frozen=True)
class PanEvaluation:
    """The detector's scores on a corpus, overall and per obfuscation folder."""

    overall: PanScores
    by_obfuscation: dict[str, PanScores]
    pairs: int
    seconds: float

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            **self.overall.to_dict(),
            "pairs": self.pairs,
            "pairs_per_second": self.pairs_per_second,
            "by_obfuscation": {name: scores.to_dict() for name, scores in self.by_obfuscation.items()},
        }


def evaluate_corpus(corpus_dir: str | Path, detector: Detector, workers: int = 1, progress: bool = False) -> PanEvaluation:
    """Run ``detector`` on every pair of a PAN corpus and score it with :func:`pan_scores`.

    The time covers preprocessing and alignment, not reading the corpus.
    """
    pairs = read_corpus(corpus_dir)
    index: dict[tuple[str, str], int] = {}
    texts: list[str] = []
    for pair in pairs:
        for key in (("susp", pair.susp), ("src", pair.src)):
            if key not in index:
                index[key] = len(texts)
                texts.append(read_text(corpus_dir, key[1], key[0]))
    started = time.perf_counter()
    alignments = detector.align_pairs(
        texts, [(index["susp", p.susp], index["src", p.src]) for p in pairs], workers=workers, progress=progress
    )
    seconds = time.perf_counter() - started
    detections = {
        pair.key: [Case(d.susp_start, d.susp_end, d.src_start, d.src_end) for d in alignment.detections]
        for pair, alignment in zip(pairs, alignments)
    }
    return PanEvaluation(pan_scores(pairs, detections), scores_by_obfuscation(pairs, detections), len(pairs), seconds)
