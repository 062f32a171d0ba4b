"""Checks of local data files around ``datasets``' reading of them.

``datasets`` reports an empty file as ``StopIteration``, a malformed JSON line
without its file or line, and a deeply nested record as ``RecursionError``, an
Arrow schema error or a crash. One pass over each file, line by line, finds
what would crash it, leave it nothing to read or make it log a line of its own
(a lone surrogate, ``"\\ud800"``) before it starts; when it then
fails on a file, a second pass, parsing every line, names the line. A UTF-8
byte order mark at the start of a file is read as the editors that write it
mean it: not part of the text."""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The deepest record (a flat object is 1 level) that datasets' Arrow reader
# takes: one level more fails its schema, and far more crashes it.
MAX_DEPTH = 63


class DataFileError(ValueError):
    """A local data file that cannot be read; the message names the file and, where there is one, the line."""


def unreadable(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a data file, as a message ends (``does not exist``,
    ``is a folder, not a data file``), or None when it is a file."""
    path = Path(path)
    if path.is_file():
        return None
    return "is a folder, not a data file" if path.is_dir() else "does not exist"


def record_place(source: str, index: int) -> str:
    """Where record ``index`` (counted from 0, in file order) of ``source`` is, as an error names it
    (:func:`record_places`)."""
    return record_places(source)(index)


def record_places(source: str) -> Callable[[int], str]:
    """Where each record of ``source`` is, by its index (counted from 0, in file order), as an error names it:
    ``FILE:LINE`` when ``source`` is (or ends in ", " and) a JSON Lines file, as every other error names a
    line; ``SOURCE: record N``, counted from 1, for any other source (a JSON array, a dataset, several
    files). The file is read once, when a first place is asked for."""
    path = Path(source.rpartition(", ")[2])
    lines: list[int] = []

    def place(index: int) -> str:
        if not lines and path.suffix.lower() in (".jsonl", ".json") and path.is_file() and not _is_json_document(path):
            lines.extend(number for number, line in decoded_lines(path) if line.strip())
        return f"{source}:{lines[index]}" if index < len(lines) else f"{source}: record {index + 1}"

    return place


def fields_of(record: Any) -> str:
    """The fields a record has, for a message about one it lacks: those with a value (``datasets`` gives a
    record the columns of every other record, null where it has none)."""
    present = [str(key) for key, value in record.items() if value is not None] if isinstance(record, dict) else []
    return f"the record has {', '.join(present)}" if present else "the record has no fields"


def decoded_lines(path: str | Path, error: type[ValueError] = DataFileError) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of a UTF-8 file, split on "\\n" only, a leading BOM dropped.

    JSON strings may hold U+2028 and other characters that ``str.splitlines``
    would take for line breaks. Raises ``error`` naming the file and line of
    bytes that are not UTF-8 or of a file that cannot be opened.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as failure:
        raise error(f"{path}: cannot read ({failure.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as failure:
                raise error(f"{path}:{number}: not valid UTF-8 (byte {failure.start} of the line)") from None
            yield number, line.removesuffix("\n")


# A JSON escape of half a UTF-16 surrogate pair (\ud800 to \udfff): where a line has none, no string of it can
# hold a lone surrogate (the line itself was decoded from UTF-8, which has none).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_problem(failure: json.JSONDecodeError, unit: str, place: int) -> str:
    """What a JSON parser found wrong and where: ``Expecting value at column 3``; some of its messages end
    in "at" themselves (``Unterminated string starting at``)."""
    return f"{failure.msg}{'' if failure.msg.endswith(' at') else ' at'} {unit} {place}"


def parse_json_line(line: str, where: str, error: type[ValueError] = DataFileError) -> Any:
    """The JSON value of one line; ``error`` names ``where`` (``FILE:LINE``) for invalid or too deeply nested
    JSON, and ``where`` and the field for an integer too long for Python to read (more than
    ``sys.get_int_max_str_digits()`` digits) or a string holding a lone surrogate (``"\\ud800"``: no
    character, which no UTF-8 output can hold)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as failure:
        raise error(f"{where}: invalid JSON ({json_problem(failure, 'column', failure.colno)})") from None
    except RecursionError:
        raise error(f"{where}: invalid JSON (nested too deeply to read)") from None
    except ValueError:
        # json turns the digits of an integer into an int, which refuses more than the limit.
        raise error(f"{where}: {_long_integer(line)}") from None
    if _may_hold_surrogates(line):
        _check_surrogates(value, where, error)
    return value


def _may_hold_surrogates(text: str) -> bool:
    return "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def _check_surrogates(value: Any, where: str, error: type[ValueError] = DataFileError) -> None:
    for field, item in _strings(value):
        if _SURROGATE.search(item):
            bad = _SURROGATE.search(item).group()
            raise error(
                f"{where}: {field}: holds a lone surrogate ({ascii(bad)[1:-1]}), half of a pair that makes "
                "no character; UTF-8 cannot write it"
            )


class _Digits(str):
    """An integer of a JSON line kept as its digits."""


def _long_integer(line: str) -> str:
    """Which field of ``line`` holds an integer too long to read, and how long it is."""
    limit = sys.get_int_max_str_digits()
    try:
        value = json.loads(line, parse_int=_Digits)
    except (ValueError, RecursionError):
        value = None
    for field, item in _values(value):
        if isinstance(item, _Digits) and limit and len(item.lstrip("-")) > limit:
            return f"{field}: an integer of {len(item.lstrip('-')):,} digits, more than the {limit:,} that can be read; write it as a string"
    return "invalid JSON (a number that cannot be read)"


def _values(value: Any) -> Iterator[tuple[str, Any]]:
    """``(field, value)`` of every value of a JSON document in document order, ``field`` naming where it
    is (``field 'id'``, ``field 'a.b[2]'``); each key comes too, as ``key 'k' of field ...``."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield (f"field {path!r}" if path else "the record"), item
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                yield f"key '{ascii(key)[1:-1]}'" + (f" of field {path!r}" if path else ""), key
                children.append((f"{path}.{ascii(key)[1:-1]}" if path else ascii(key)[1:-1], child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(item)]))


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    return ((field, item) for field, item in _values(value) if isinstance(item, str))


def count_records(path: str | Path) -> int | None:
    """Number of records in a local JSON, JSONL, CSV or parquet file, after the checks that cost little.

    Every file: not empty, UTF-8 (a BOM at the start allowed). JSONL (and a
    ``.json`` file of one object per line): one record per non-blank line; a
    line with more brackets than ``MAX_DEPTH`` is parsed and refused when it
    nests deeper (Arrow would fail on it, or crash), and one that escapes half
    of a surrogate pair when a string holds a lone one. A ``.json`` document (an
    array of objects, or one object) is checked whole. CSV: a header and at
    least one more line. None for CSV and parquet, whose rows are not counted here.
    Raises :class:`DataFileError` naming the file and line of the first
    problem, or the file when it holds no record; :func:`find_problem` checks
    every line when ``datasets`` cannot read a file these checks passed.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: the file is empty (no records)")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".csv"):
        return None
    if suffix == ".csv":
        # A quoted field may span lines, so lines are no count of rows; a header alone is no record.
        if sum(1 for _, line in decoded_lines(path) if line.strip()) < 2:
            raise DataFileError(f"{path}: holds no records (a header and no rows)")
        return None
    if _is_json_document(path):
        count = _count_json_document(path)
    else:
        count = 0
        for number, line in decoded_lines(path):
            if line.strip():
                count += 1
                if line.count("[") + line.count("{") > MAX_DEPTH:
                    _check_depth(parse_json_line(line, f"{path}:{number}"), f"{path}:{number}")
                elif _may_hold_surrogates(line):
                    # datasets would fail on it after logging a line of its own, naming neither line nor field.
                    parse_json_line(line, f"{path}:{number}")
    if count == 0:
        raise DataFileError(f"{path}: holds no records")
    return count


def find_problem(path: str | Path) -> None:
    """Raise :class:`DataFileError` naming the first line of a JSON Lines file that is not a JSON object.

    For a file :func:`count_records` passed but ``datasets`` could not read,
    or read into another number of rows; returns when every line is a record.
    """
    for number, record in json_lines(path):
        if not isinstance(record, dict):
            raise DataFileError(f"{Path(path)}:{number}: expected a JSON object (one record per line), got {_kind(record)}")


def json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSON Lines file (or a ``.json`` file of one object
    per line); nothing for other files. Raises :class:`DataFileError` naming the first line that is not JSON."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".jsonl") or _is_json_document(path):
        return
    for number, line in decoded_lines(path):
        if line.strip():
            yield number, parse_json_line(line, f"{path}:{number}")


def _is_json_document(path: Path) -> bool:
    """Whether a ``.json`` file is one JSON document rather than one object per line: its first line is no object."""
    if path.suffix.lower() != ".json":
        return False
    first = next((line for _, line in decoded_lines(path) if line.strip()), "")
    try:
        return not isinstance(json.loads(first), dict)
    except (json.JSONDecodeError, RecursionError):
        return True


def _count_json_document(path: Path) -> int:
    """Records of a ``.json`` file that is one JSON document (an array of objects, or one object)."""
    text = "\n".join(line for _, line in decoded_lines(path))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as failure:
        raise DataFileError(f"{path}:{failure.lineno}: invalid JSON ({json_problem(failure, 'column', failure.colno)})") from None
    except RecursionError:
        document = None
    # In an array, each record is one level down.
    limit = MAX_DEPTH + text.lstrip().startswith("[")
    if document is None or _depth(document) > limit:
        raise DataFileError(f"{path}:{_deep_line(text, limit)}: JSON nested too deeply (more than {MAX_DEPTH} levels)")
    if not isinstance(document, (dict, list)):
        raise DataFileError(f"{path}: expected a JSON array of objects, one object, or one object per line; got {_kind(document)}")
    records = [document] if isinstance(document, dict) else document
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataFileError(f"{path}: record {index + 1}: expected a JSON object, got {_kind(record)}")
    if _may_hold_surrogates(text):
        for index, record in enumerate(records):
            _check_surrogates(record, f"{path}: record {index + 1}")
    return len(records)


def _check_depth(record: Any, where: str) -> None:
    if _depth(record) > MAX_DEPTH:
        raise DataFileError(f"{where}: JSON nested too deeply (more than {MAX_DEPTH} levels)")


def _depth(value: Any) -> int:
    """Levels of arrays and objects in a JSON value (a flat object is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _deep_line(text: str, limit: int) -> int:
    """The line of a JSON document on which its nesting first exceeds ``limit`` levels."""
    level, line, in_string, escaped = 0, 1, False, False
    for char in text:
        if char == "\n":
            line += 1
        elif in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level > limit:
                return line
        elif char in "]}":
            level -= 1
    return line


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
