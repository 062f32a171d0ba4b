"""The memorization detector D: PAN-grade text alignment (see shared spec, sections 1-6)."""

from memtasks.detection.align import NO_ALIGNMENT, Alignment, Detection, verbatim_runs
from memtasks.detection.config import PRESETS, DetectorConfig, get_config
from memtasks.detection.detector import Detector, default_workers
from memtasks.detection.text import Document, TermEncoder, preprocess, sentence_spans, word_spans
from memtasks.outcomes import CATEGORIES

__all__ = [
    "CATEGORIES",
    "NO_ALIGNMENT",
    "PRESETS",
    "Alignment",
    "Detection",
    "Detector",
    "DetectorConfig",
    "Document",
    "TermEncoder",
    "default_workers",
    "get_config",
    "preprocess",
    "sentence_spans",
    "verbatim_runs",
    "word_spans",
]
