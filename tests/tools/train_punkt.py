"""Rebuild memtasks/detection/sentences_en.json, the sentence splitter's parameters.

Punkt's trainer learns abbreviations and frequent sentence starters without
supervision; it is trained here on the English news and encyclopedic text of
../shared/data and completed with common abbreviations that a small sample
may miss. Usage: python tests/tools/train_punkt.py [DATA_DIR]
"""

import json
import sys
from pathlib import Path

from nltk.tokenize.punkt import PunktTrainer

FIELDS = {
    "xsum.jsonl": ["document", "summary"],
    "ag_news.jsonl": ["description"],
    "squad_v2.jsonl": ["context"],
    "wmt22_en_de.jsonl": ["en"],
}
COMMON_ABBREVIATIONS = """
mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep pres rev hon
jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri sat sun
inc corp co ltd llc plc bros dept univ assn est approx vs etc al cf ie eg viz fig no nos vol
pp ed eds op ch sec art ave blvd rd hwy u.s u.k u.n e.u a.m p.m d.c i.e e.g u.s.a ph.d b.a m.a
""".split()


def main(data_dir: Path) -> None:
    trainer = PunktTrainer()
    seen = set()
    for name, fields in FIELDS.items():
        for line in (data_dir / name).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            record = json.loads(line)
            for field in fields:
                text = record.get(field)
                if isinstance(text, str) and text not in seen:
                    seen.add(text)
                    trainer.train(text, finalize=False)
    trainer.finalize_training()
    params = trainer.get_params()
    # Punkt also takes rare words that happen to precede periods for abbreviations
    # ("ore.", "jar."); of what it learns, only dotted types such as "u.s" are trusted.
    learned = {a for a in params.abbrev_types if "." in a and not a[0].isdigit()}
    abbreviations = sorted(learned | set(COMMON_ABBREVIATIONS))
    out = {"abbreviations": abbreviations, "sentence_starters": sorted(params.sent_starters)}
    target = Path(__file__).resolve().parents[2] / "memtasks" / "detection" / "sentences_en.json"
    target.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{target}: {len(abbreviations)} abbreviations, {len(out['sentence_starters'])} sentence starters")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data")
