"""Detector parameters and the two presets of spec section 9."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


WEIGHTINGS = ("pan", "smoothed")


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds and lengths of the text-alignment detector.

    Attributes:
        th1: seeding threshold on the cosine of two sentences' TF-ISF vectors.
        th2: seeding threshold on the Dice coefficient of their term sets.
        th3: validation threshold on the cosine of the summed span vectors.
        maxgap: largest number of sentences between two seeds of one cluster.
        gap_least: smallest maxgap tried when a case fails validation.
        summary_gap: maxgap of the summary (idea) pass.
        summary_ratio: the pair is idea memorization when the source side of the
            summary pass is at least this many times longer than the suspicious side
            (expansion) or, with ``condensation``, the suspicious side this many times
            longer than the source side.
        condensation: also call a pair idea when its generation condenses a longer
            stretch of the training suffix (spec 11.5); off in ``pan14``, where PAN's
            summary obfuscation runs one way only.
        min_plaglen: shortest case kept, in characters, on either side.
        verbatim_minlen: a common run of words is verbatim when longer than this
            many characters on the suspicious side.
        weighting: ``"pan"``, tf x ln(N / sf) over the pair's sentences (spec 2), or
            ``"smoothed"``, tf x ln(1 + N / sf) for words: a word every sentence shares
            keeps a weight, so that two one-sentence texts can seed (spec 11.4). Letters
            of unspaced scripts keep ln(N / sf) (any two sentences share most of them).
        support: an idea or paraphrase pair is kept only when the detector's evidence that it
            restates its suffix (:mod:`memtasks.detection.evidence`) is at least this, whichever
            weighting aligned it (spec 11.8): below it, it is a one-sentence topical
            coincidence far more often than a restatement. 0 keeps every pair.
        stemmer: ``"snowball"`` or ``"porter"``.
        remove_stopwords: drop English stop words before weighting.
    """

    th1: float = 0.30
    th2: float = 0.33
    th3: float = 0.34
    maxgap: int = 4
    gap_least: int = 0
    summary_gap: int = 24
    summary_ratio: float = 3.0
    condensation: bool = False
    min_plaglen: int = 150
    verbatim_minlen: int = 256
    weighting: str = "pan"
    support: float = 0.0
    stemmer: str = "snowball"
    remove_stopwords: bool = False

    def __post_init__(self) -> None:
        if self.stemmer not in ("snowball", "porter"):
            raise ValueError(f"stemmer must be 'snowball' or 'porter', not {self.stemmer!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))}, not {self.weighting!r}")
        if not 0 <= self.gap_least <= self.maxgap <= self.summary_gap:
            raise ValueError("need 0 <= gap_least <= maxgap <= summary_gap")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, DetectorConfig] = {
    "pan14": DetectorConfig(),
    "memorization": DetectorConfig(
        min_plaglen=50, verbatim_minlen=50, weighting="smoothed", condensation=True, support=0.001
    ),
}


def get_config(preset: str | DetectorConfig = "memorization", **overrides) -> DetectorConfig:
    """A preset by name (``"pan14"`` or ``"memorization"``), with optional overrides."""
    if isinstance(preset, DetectorConfig):
        config = preset
    else:
        try:
            config = PRESETS[preset]
        except KeyError:
            raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}") from None
    return replace(config, **overrides) if overrides else config
