"""How the paraphrase grader's encoder (:mod:`memtasks.grader`) runs.

On a CPU it runs in ONNX Runtime with int8 weights: the encoder, its adapter
merged in, is written as an ONNX graph (:func:`encoder_graph`) and its weights
quantized per output channel by ``onnxruntime.quantization.quantize_dynamic``.
On the benchmark's sentence pairs that takes less than half the CPU time of
the same graph in float32 and a fifth of the NumPy forward pass it replaces,
while on MRPC's held-out pairs its ROC AUC (0.8825) and accuracy at the
threshold (0.8008) are those of float32 (0.8832 / 0.7945; docs/performance.md).
Activations are quantized symmetrically: asymmetric ones cost 0.002 of AUC and
moved more benchmark pairs across the threshold.

Building the int8 model takes about two seconds, so it is built once per user
and kept in ``~/.cache/memtasks/grader`` (:func:`memtasks.kernel_cache.user_cache_folder`),
under a key made of the hashes of the base weights, its config and the adapter,
the adapter's scaling, this module's graph version and the ONNX Runtime version:
any change to what went into it makes a new one. A cached file is used only if
its bytes have the SHA-256 written beside it (written after it, both by atomic
rename), so a torn or damaged file is rebuilt, never read.

Where torch sees a GPU the encoder runs there in float32, as transformers'
``BertModel`` with the merged weights: a GPU has no use for the int8 copy.

Without an adapter the same code runs the base encoder, its output the mean-pooled
last hidden states: the sentence encoder :mod:`memtasks.summaries` finds summaries
with, cached under a key of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from memtasks.kernel_cache import user_cache_folder
from memtasks.outputs import atomic_path, write_atomic

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Raise when encoder_graph or the quantization changes what a cached model computes.
GRAPH_VERSION = 1
CACHE_NAME = "grader"
OPSET = 17
INPUTS = ("input_ids", "token_type_ids", "attention_mask")


# A tokenized sentence pair: its token ids and token type ids.
Row = tuple[Sequence[int], Sequence[int]]


class Encoder(Protocol):
    device: str

    def run(self, rows: Sequence[Row]) -> np.ndarray:
        """The output of each row: the head's two logits (len(rows) x 2), or for an encoder
        without a head its last hidden states mean-pooled (len(rows) x hidden)."""
        ...


def padded(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, token types and attention mask of ``rows`` padded to the longest (int64, rows x length)."""
    ids = np.zeros((len(rows), max(len(r[0]) for r in rows)), np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for i, (row_ids, row_types) in enumerate(rows):
        ids[i, : len(row_ids)], types[i, : len(row_ids)], mask[i, : len(row_ids)] = row_ids, row_types, 1
    return ids, types, mask


def merged_weights(base: dict[str, np.ndarray], adapter: dict[str, np.ndarray], scaling: float) -> dict[str, np.ndarray]:
    """The base weights with each adapted linear layer's low-rank update added:
    W' = W + scaling · B A, for every ``NAME.lora_A`` (r x in) and ``NAME.lora_B`` (out x r)."""
    weights = dict(base)
    for name in adapter:
        if name.endswith(".lora_A"):
            layer = name[: -len(".lora_A")]
            weights[f"{layer}.weight"] = base[f"{layer}.weight"] + scaling * (adapter[f"{layer}.lora_B"] @ adapter[name])
    return weights


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    """The encoder's tokenizer (``tokenizer.json`` of ``model_dir``): texts cut to ``max_tokens``, never padded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    return tokenizer


def torch_sees_a_gpu() -> bool:
    """Whether torch sees a CUDA (or ROCm) GPU. Importing torch takes seconds, so it is
    asked only where it is already imported or a GPU driver's device files exist."""
    drivers = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")
    if "torch" not in sys.modules and not any(os.path.exists(path) for path in drivers):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cpu_threads() -> int:
    """``OMP_NUM_THREADS`` where set (the limit a user or a test run gives BLAS), else every core this process may use."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_encoder(model_dir: Path, adapter_path: Path | None, scaling: float, device: str | None = None) -> Encoder:
    """The encoder of ``model_dir`` with the adapter merged in (or, with no adapter, the base
    encoder, whose output is the mean-pooled sentence embedding), on ``device`` ("cpu", "cuda";
    default: "cuda" where torch sees a GPU, else "cpu"). On "cpu" the cached int8 ONNX model,
    elsewhere float32 torch."""
    device = device or ("cuda" if torch_sees_a_gpu() else "cpu")
    if device == "cpu":
        key = model_key(model_dir, adapter_path, scaling)
        model = cached_model(user_cache_folder(CACHE_NAME), key, lambda: quantized_model(model_dir, adapter_path, scaling))
        return OnnxEncoder(model)
    weights, head, _ = read_weights(model_dir, adapter_path, scaling)
    return TorchEncoder(model_dir, weights, head, device)


def read_weights(
    model_dir: Path, adapter_path: Path | None, scaling: float
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray] | None, dict]:
    """The merged encoder weights, the head (W, c) and the encoder's config; without an
    adapter, the base weights and no head."""
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text("utf-8"))
    base = load_file(str(model_dir / "model.safetensors"))
    if adapter_path is None:
        return base, None, config
    adapter = load_file(str(adapter_path))
    return merged_weights(base, adapter, scaling), (adapter["head.weight"], adapter["head.bias"]), config


def model_key(model_dir: Path, adapter_path: Path | None, scaling: float) -> str:
    """What the cached model is made from, hashed: base weights, config, adapter (or none),
    scaling, graph version and ONNX Runtime version."""
    import onnxruntime

    key = hashlib.sha256(f"{GRAPH_VERSION} {onnxruntime.__version__} {scaling!r} {adapter_path is None}".encode())
    paths = (model_dir / "model.safetensors", model_dir / "config.json", *([] if adapter_path is None else [adapter_path]))
    for path in paths:
        key.update(_file_digest(path))
    return key.hexdigest()[:32]


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.digest()


def cached_model(folder: Path | None, key: str, build: Callable[[], bytes]) -> bytes:
    """The model bytes cached under ``key`` in ``folder`` when they are intact, else ``build()``,
    written there for the next run (when it can be: a cache that cannot be written costs the
    build each run, never a result)."""
    if folder is None:
        return build()
    model, digest = folder / f"encoder-{key}.onnx", folder / f"encoder-{key}.sha256"
    try:
        data = model.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest.read_text("ascii").strip():
            return data
    except (OSError, UnicodeDecodeError):
        pass
    data = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The digest goes last: a reader that finds it finds the whole model beside it.
        with atomic_path(model) as temporary:
            temporary.write_bytes(data)
        write_atomic(digest, hashlib.sha256(data).hexdigest())
    except OSError:
        pass
    return data


def quantized_model(model_dir: Path, adapter_path: Path | None, scaling: float) -> bytes:
    """The encoder (:func:`read_weights`) as an ONNX model with int8 weights (per output channel), serialized."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights, head, config = read_weights(model_dir, adapter_path, scaling)
    with tempfile.TemporaryDirectory(prefix="memtasks-grader-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        fp32.write_bytes(encoder_graph(weights, head, config).SerializeToString())
        # quantize_dynamic logs a suggestion to the root logger on every call; a user has no use for it.
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True, extra_options={"ActivationSymmetric": True})
        finally:
            logging.disable(logging.NOTSET)
        return int8.read_bytes()


def encoder_graph(weights: dict[str, np.ndarray], head: tuple[np.ndarray, np.ndarray] | None, config: dict):
    """The encoder as an ONNX graph (float32): post-LayerNorm BERT, exact-erf GELU, the last
    hidden states mean-pooled over the attention mask, then the head; inputs ``INPUTS``
    (int64, batch x length), output ``logits`` (batch x 2), or without a head ``pooled``
    (batch x hidden)."""
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes = [], []

    def constant(name: str, value: np.ndarray | float | list) -> str:
        if name not in {i.name for i in initializers}:
            initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def linear(x: str, name: str) -> str:
        # MatMul by the transposed weight: the form quantize_dynamic turns into an int8 MatMulInteger.
        weight = constant(f"{name}.weight_t", np.ascontiguousarray(weights[f"{name}.weight"].T))
        return node("Add", [node("MatMul", [x, weight], f"{name}.mm"), constant(f"{name}.bias", weights[f"{name}.bias"])], f"{name}.out")

    def layer_norm(x: str, name: str) -> str:
        return node("LayerNormalization", [x, constant(f"{name}.weight", weights[f"{name}.weight"]),
                                           constant(f"{name}.bias", weights[f"{name}.bias"])],
                    f"{name}.out", axis=-1, epsilon=float(config["layer_norm_eps"]))

    def embedding(name: str, ids: str) -> str:
        return node("Gather", [constant(f"embeddings.{name}.weight", weights[f"embeddings.{name}.weight"]), ids], f"{name}.out")

    hidden, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    size = hidden // n_heads
    length = node("Gather", [node("Shape", ["input_ids"], "shape"), constant("one", np.int64(1))], "length")
    positions = node("Range", [constant("zero", np.int64(0)), length, "one"], "positions")
    x = node("Add", [embedding("word_embeddings", "input_ids"), embedding("position_embeddings", positions)], "embedded")
    x = layer_norm(node("Add", [x, embedding("token_type_embeddings", "token_type_ids")], "embedded_types"), "embeddings.LayerNorm")
    mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT)
    padding = node("Sub", [constant("one_f", np.float32(1)), mask], "padding")
    blocked = node("Mul", [padding, constant("blocked_score", np.finfo(np.float32).min)], "blocked_rows")
    blocked = node("Unsqueeze", [blocked, constant("axes_1_2", np.array([1, 2], np.int64))], "blocked")
    split = constant("split_heads", np.array([0, 0, n_heads, size], np.int64))
    merge = constant("merge_heads", np.array([0, 0, hidden], np.int64))
    for i in range(int(config["num_hidden_layers"])):
        layer = f"encoder.layer.{i}"

        def heads(name: str, perm: list[int]) -> str:
            projected = node("Reshape", [linear(x, f"{layer}.attention.self.{name}"), split], f"{layer}.{name}.split")
            return node("Transpose", [projected], f"{layer}.{name}.heads", perm=perm)

        q, k, v = heads("query", [0, 2, 1, 3]), heads("key", [0, 2, 3, 1]), heads("value", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"{layer}.qk"), constant("scale", np.float32(1 / np.sqrt(size)))], f"{layer}.scaled")
        attention = node("Softmax", [node("Add", [scores, blocked], f"{layer}.scores")], f"{layer}.attention", axis=-1)
        context = node("Transpose", [node("MatMul", [attention, v], f"{layer}.context.heads")], f"{layer}.context.t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge], f"{layer}.context")
        x = layer_norm(node("Add", [x, linear(context, f"{layer}.attention.output.dense")], f"{layer}.residual1"),
                       f"{layer}.attention.output.LayerNorm")
        inner = linear(x, f"{layer}.intermediate.dense")
        erf = node("Erf", [node("Mul", [inner, constant("inv_sqrt2", np.float32(1 / np.sqrt(2.0)))], f"{layer}.gelu.scaled")], f"{layer}.gelu.erf")
        half = node("Mul", [inner, constant("half", np.float32(0.5))], f"{layer}.gelu.half")
        inner = node("Mul", [half, node("Add", [erf, "one_f"], f"{layer}.gelu.sum")], f"{layer}.gelu")
        x = layer_norm(node("Add", [x, linear(inner, f"{layer}.output.dense")], f"{layer}.residual2"), f"{layer}.output.LayerNorm")
    per_token = node("Unsqueeze", [mask, constant("axis_2", np.array([2], np.int64))], "mask_per_token")
    summed = node("ReduceSum", [node("Mul", [x, per_token], "masked"), constant("axis_1", np.array([1], np.int64))], "summed", keepdims=0)
    pooled = node("Div", [summed, node("ReduceSum", [mask, "axis_1"], "tokens", keepdims=1)], "pooled")
    if head is None:
        output = helper.make_tensor_value_info(pooled, TensorProto.FLOAT, ["batch", hidden])
    else:
        head_weight, head_bias = head
        logits = node("MatMul", [pooled, constant("head.weight_t", np.ascontiguousarray(head_weight.T))], "head.mm")
        output = helper.make_tensor_value_info(node("Add", [logits, constant("head.bias", head_bias)], "logits"),
                                               TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph(
        nodes, "memtasks_paraphrase_grader",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "length"]) for name in INPUTS],
        [output],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


class OnnxEncoder:
    """An ONNX model of the encoder (:func:`encoder_graph`'s inputs and output) in ONNX Runtime on the CPU.

    Each row runs alone, ``threads`` rows at a time: the int8 model quantizes its activations
    with one scale per run, so a batch would make a pair's p depend on the pairs beside it
    (and one-row runs pad nothing; they took less CPU time than batches of 64 here)."""

    device = "cpu"

    def __init__(self, model: bytes, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Idle threads spinning between runs would take a core from the run's other work for nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.threads = threads or cpu_threads()

    def _row(self, row: Row) -> np.ndarray:
        ids, types = (np.asarray([values], np.int64) for values in row)
        return self.session.run(None, dict(zip(INPUTS, (ids, types, np.ones_like(ids)))))[0][0]

    def run(self, rows: Sequence[Row]) -> np.ndarray:
        if self.threads == 1 or len(rows) == 1:
            return np.stack([self._row(row) for row in rows])
        with ThreadPoolExecutor(self.threads) as pool:
            return np.stack(list(pool.map(self._row, rows)))


class TorchEncoder:
    """The encoder in float32 torch (transformers' ``BertModel``) on ``device``; without a
    head, its output is the mean-pooled last hidden states."""

    def __init__(self, model_dir: Path, weights: dict[str, np.ndarray], head: tuple[np.ndarray, np.ndarray] | None, device: str):
        import torch
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig.from_json_file(str(model_dir / "config.json")), add_pooling_layer=False)
        wanted = model.state_dict()
        missing = set(wanted) - set(weights)
        if missing:
            raise ValueError(f"the encoder's weights lack {sorted(missing)}")
        model.load_state_dict({name: torch.from_numpy(weights[name]) for name in wanted})
        self.device = device
        self.model = model.to(device).eval()
        self.head = None if head is None else tuple(torch.from_numpy(array).to(device) for array in head)

    def run(self, rows: Sequence[Row]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            ids_t, types_t, mask_t = (torch.from_numpy(a).to(self.device) for a in padded(rows))
            hidden = self.model(input_ids=ids_t, token_type_ids=types_t, attention_mask=mask_t).last_hidden_state
            per_token = mask_t[:, :, None].to(hidden.dtype)
            pooled = (hidden * per_token).sum(1) / per_token.sum(1)
            if self.head is None:
                return pooled.cpu().numpy()
            weight, bias = self.head
            return (pooled @ weight.T + bias).cpu().numpy()
