"""The human-judged paraphrase pairs of the Microsoft Research Paraphrase Corpus (MRPC).

``../shared/data/mrpc_train.tsv`` is MRPC's training split (4,076 sentence
pairs from news, judged paraphrase or not by people; see SOURCES.md there).
Every pair belongs to one of five folds by a hash of its two sentence ids;
fold 0 is **held out**: the grader and the detector are never fitted or tuned
on it, only measured. The other four are the development part, where the
grader is fitted and validated (``tests/tools/train_grader.py``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MRPC_FILE = DATA / "mrpc_train.tsv"
FOLDS = 5
HELDOUT_FOLD = 0


@dataclass(frozen=True)
class MrpcPair:
    id: str
    label: int
    first: str
    second: str

    @property
    def fold(self) -> int:
        return int(hashlib.sha256(self.id.encode()).hexdigest(), 16) % FOLDS


def read_mrpc(path: Path = MRPC_FILE) -> list[MrpcPair]:
    """Every pair of an MRPC file (tab-separated, header line, quotes not special)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    pairs = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 5 or row[0] not in ("0", "1"):
            raise ValueError(f"{path}:{number}: expected Quality (0 or 1), #1 ID, #2 ID, #1 String, #2 String")
        pairs.append(MrpcPair(f"{row[1]}-{row[2]}", int(row[0]), row[3], row[4]))
    return pairs


def mrpc_part(pair: MrpcPair) -> str:
    """``"heldout"`` for fold 0, else ``"dev"``."""
    return "heldout" if pair.fold == HELDOUT_FOLD else "dev"
