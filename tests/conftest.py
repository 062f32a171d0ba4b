import os

# Tests never reach the Hugging Face hub: every model and tokenizer they load is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
