"""An lm-eval run's results file and per-sample logs, written whole or not at all.

lm-eval's ``EvaluationTracker`` writes both itself, straight to their final names, and on any error
logs a warning and goes on: on a full disk ``memtasks eval`` ended with exit 0, a results file cut
short and an empty samples log. :func:`save_run` writes the same files, under the names and with the
content lm-eval gives them, through :func:`memtasks.outputs.write_together`: every file is written in
full before any takes its name, so a write that fails raises ``OSError`` naming the file and leaves none
of the run's files. The results file takes its name last: it is what a reader takes for a finished run.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from memtasks.outputs import write_together


def save_run(tracker, results: dict[str, Any], samples: dict[str, list[dict]] | None) -> Path:
    """Write ``results`` (and ``samples``, by task, when the run logs them) where ``tracker``'s
    ``output_path`` tells lm-eval to; returns the results file. ``results`` gets the entries lm-eval
    adds (task hashes, the run's configuration), as lm-eval's own writer does."""
    from lm_eval.utils import handle_non_serializable, hash_string

    tracker.general_config_tracker.log_end_time()
    hashes = {
        task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in rows))
        for task, rows in (samples or {}).items()
    }
    results.update({"task_hashes": hashes})
    results.update(asdict(tracker.general_config_tracker))
    tracker.date_id = datetime.now().isoformat().replace(":", "-")
    # Absolute: the paths a failure names mean the same from wherever the command was run.
    path = Path(tracker.output_path).absolute()
    if path.suffix == ".json":
        folder, results_file = path.parent, path.with_name(f"{path.stem}_{tracker.date_id}.json")
    else:
        folder = path / str(tracker.general_config_tracker.model_name_sanitized)
        results_file = folder / f"results_{tracker.date_id}.json"
    folder.mkdir(parents=True, exist_ok=True)
    logs = {
        folder / f"samples_{task}_{tracker.date_id}.jsonl": "".join(_sample_line(s, handle_non_serializable) for s in samples[task])
        for task in (results["configs"] if samples is not None else ())
    }
    write_together({**logs, results_file: json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False)})
    return results_file


def check_written(output_path: str | Path, since: float) -> None:
    """After lm-eval wrote a run's files itself (with uploads, which memtasks does not drive): every results
    file and samples log it wrote under ``output_path`` at or after ``since`` must parse. A file cut short
    is removed, and the error names it; a run that wrote no results file at all is an error too."""
    path = Path(output_path).absolute()
    folder = path.parent if path.suffix == ".json" else path
    pattern = f"{path.stem}_*.json" if path.suffix == ".json" else "*/results_*.json"
    written = [p for p in (*folder.glob(pattern), *folder.glob("**/samples_*.jsonl")) if p.stat().st_mtime >= since]
    if not any(p.suffix == ".json" for p in written):
        raise OSError(f"{folder}: lm-eval wrote no results file there (see its warning above)")
    for file in written:
        try:
            text = file.read_text(encoding="utf-8")
            if file.suffix == ".json":
                json.loads(text)
            else:
                for line in text.splitlines():
                    json.loads(line)
        except (ValueError, UnicodeDecodeError) as error:
            for other in written:
                other.unlink(missing_ok=True)
            raise OSError(f"{file}: cut short ({error}): lm-eval could not write it (see its warning above); the run's files are removed") from None


def _sample_line(sample: dict, default) -> str:
    """One line of a samples log, as lm-eval's writer makes it (arguments flattened so ``datasets`` reads the file)."""
    from lm_eval.utils import sanitize_list

    arguments = {f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(arg)} for i, arg in enumerate(sample["arguments"])}
    line = {
        **sample,
        "arguments": arguments,
        "resps": sanitize_list(sample["resps"]),
        "filtered_resps": sanitize_list(sample["filtered_resps"]),
        "target": str(sample["target"]),
    }
    return json.dumps(line, default=default, ensure_ascii=False) + "\n"
