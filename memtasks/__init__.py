"""memtasks: measure how much a language model memorizes its fine-tuning data."""
