"""Rebuild memtasks/retrieval/unicode_12_1.json, the analyzer's Unicode 12.1 properties.

Lucene 9's StandardTokenizer (Elasticsearch 8) is generated from Unicode 12.1
data, so the analyzer ships exactly those properties rather than reading the
installed ``regex`` module's (newer) ones. Source: the npm package
``@unicode/unicode-12.1.0`` (the Unicode Character Database 12.1 and its
emoji data, one range list per property value), read with node:

    cd /tmp && npm pack @unicode/unicode-12.1.0 && tar xzf unicode-unicode-12.1.0-*.tgz
    python tests/tools/unicode_tables.py /tmp/package

The output holds, for each property value the tokenizer grammar names, its code
points as a flat list of half-open ranges ``[start0, end0, start1, end1, ...]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROPERTIES = [
    *(f"Word_Break/{value}" for value in (
        "ALetter", "Hebrew_Letter", "Numeric", "Katakana", "ExtendNumLet", "MidLetter", "MidNum",
        "MidNumLet", "Single_Quote", "Double_Quote", "Format", "Extend", "ZWJ", "Regional_Indicator",
    )),
    "Script/Han",
    "Script/Hiragana",
    "Line_Break/Complex_Context",
    "Binary_Property/Emoji",
    "Binary_Property/Emoji_Modifier",
    "Binary_Property/Emoji_Modifier_Base",
    "Binary_Property/Extended_Pictographic",
]
OUTPUT = Path(__file__).resolve().parents[2] / "memtasks" / "retrieval" / "unicode_12_1.json"

# Prints {property: [[begin, end), ...]} for the range modules of the package.
NODE_SCRIPT = """
const [root, ...names] = process.argv.slice(1);
const out = {};
for (const name of names) {
  const ranges = (await import(`${root}/${name}/ranges.mjs`)).default;
  out[name] = ranges.flatMap(r => [r.begin, r.end]);
}
console.log(JSON.stringify(out));
"""


def read_ranges(package: Path) -> dict[str, list[int]]:
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    if manifest.get("name") != "@unicode/unicode-12.1.0":
        raise SystemExit(f"{package}: not the @unicode/unicode-12.1.0 package (found {manifest.get('name')!r})")
    result = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_SCRIPT, str(package.resolve()), *PROPERTIES],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout)


def main(package: Path) -> None:
    tables = read_ranges(package)
    for name, flat in tables.items():
        if len(flat) % 2 or any(b >= e for b, e in zip(flat[::2], flat[1::2])) or flat != sorted(flat):
            raise SystemExit(f"{name}: ranges are not sorted and disjoint")
    document = {"unicode": "12.1.0", "source": "npm @unicode/unicode-12.1.0", "ranges": tables}
    OUTPUT.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size:,} bytes, {len(tables)} properties)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
