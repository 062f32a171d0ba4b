"""memtasks: measure how much a language model memorizes its fine-tuning data."""

from memtasks.kernel_cache import configure as _configure_kernel_cache

# Before numba is imported: where it caches the compiled kernels when the package folder is read-only.
_configure_kernel_cache()
