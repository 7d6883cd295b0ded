# Type stubs of looplm._core, the pybind11 extension (csrc/python/). Kept by hand beside the
# bindings; tests/test_typing.py checks that every name the module exports is declared here.
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class GGUFError(ValueError):
    """A GGUF file the loader refuses; the message names the file and the key or tensor."""

class RunOptions:
    """Resolved per-call options of the looped forward (Model.resolve makes them)."""

    @property
    def loops(self) -> int: ...
    @property
    def exit_threshold(self) -> float: ...
    @property
    def exit_mode(self) -> str: ...
    @property
    def exit_at_step(self) -> int | None: ...
    @property
    def kv_fill(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...

class Model:
    def __init__(
        self,
        path: str | bytes,
        n_ctx: int,
        n_threads: int,
        loops: int,
        kv_type: str,
        kernels: str,
        n_batch: int,
        *,
        run_loops: int | None = None,
        exit_threshold: float | None = None,
        exit_mode: str | None = None,
        exit_at_step: int | None = None,
        kv_fill: str | None = None,
        use_mmap: bool = True,
        use_mlock: bool = False,
        type_k: str | None = None,
        type_v: str | None = None,
        kv_share: str = "none",
    ) -> None: ...
    def resolve(
        self,
        *,
        loops: int | None = None,
        exit_threshold: float | None = None,
        exit_mode: str | None = None,
        exit_at_step: int | None = None,
        kv_fill: str | None = None,
    ) -> RunOptions: ...
    @property
    def load_options(self) -> RunOptions: ...
    def eval(self, tokens: npt.ArrayLike, all_logits: bool, options: RunOptions) -> npt.NDArray[np.float32]: ...
    def prefill(self, tokens: list[int], options: RunOptions) -> npt.NDArray[np.float32]: ...
    @property
    def reused(self) -> int: ...
    def bench_fill_kv(self, n: int, seed: int = 0) -> None:
        """Bench hook: the context holds n positions of deterministic K/V (KVCache::fill_synthetic)."""
    def reset(self) -> None: ...
    def truncate(self, n: int, /) -> None: ...
    @property
    def tokens(self) -> list[int]: ...
    def kv_slot(self, loop: int, layer: int, /) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...
    def tokenize(self, text: str | bytes, special: bool) -> list[int]: ...
    def token_bytes(self, token: int, /) -> bytes: ...
    def detokenize(self, tokens: list[int], /) -> bytes: ...
    def token_type(self, token: int, /) -> int: ...
    @property
    def vocab(self) -> dict[str, Any]: ...
    @property
    def exit_steps(self) -> npt.NDArray[np.int32]: ...
    @property
    def last_exit_step(self) -> int: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def n_past(self) -> int: ...
    @property
    def kv_bytes(self) -> int: ...

class BatchModel:
    """Several independent sequences over one model, stepped together (csrc/model/batch.h)."""

    def __init__(
        self,
        path: str,
        n_seq: int,
        n_ctx: int,
        n_threads: int,
        loops: int,
        kv_type: str,
        kernels: str,
        use_mmap: bool = True,
        use_mlock: bool = False,
        type_k: str | None = None,
        type_v: str | None = None,
        kv_share: str = "none",
    ) -> None: ...
    def step(
        self,
        seqs: list[int],
        tokens: list[list[int]],
        options: list[RunOptions],
        ends: list[bool] | None = None,
    ) -> tuple[npt.NDArray[np.float32], list[int]]:
        """Runs each sequence's tokens in one batch; returns (logits [n, n_vocab], exit loops).
        ends[i] False keeps sequence i's chunk open for its next step (kv_share='last': a prompt
        in parts is one chunk)."""
    def reset(self, seq: int, /) -> None: ...
    def n_past(self, seq: int, /) -> int: ...
    def kv_bytes(self, seq: int, /) -> int: ...
    @property
    def n_seq(self) -> int: ...
    @property
    def n_ctx(self) -> int: ...
    @property
    def n_threads(self) -> int: ...
    @property
    def max_loops(self) -> int: ...

class Sampler:
    def __init__(
        self,
        temperature: float,
        top_k: int,
        top_p: float,
        min_p: float,
        repeat_penalty: float,
        presence_penalty: float,
        frequency_penalty: float,
        penalty_last_n: int,
        seed: int,
    ) -> None: ...
    def sample(self, logits: npt.ArrayLike, history: npt.ArrayLike, /) -> int: ...

def kernels() -> str: ...
def kernels_available() -> list[str]: ...
def cpu_features() -> str: ...
def build_info() -> dict[str, Any]: ...
def physical_cores() -> int: ...
def file_info(path: str, max_array: int = 64) -> dict[str, Any]: ...
def dequantize(type_id: int, raw: npt.ArrayLike, n: int) -> npt.NDArray[np.float32]:
    """Decodes raw GGUF rows [rows, row_bytes] of a ggml type to f32 [rows, n]."""

def quantize(type_id: int, x: npt.ArrayLike, n_threads: int = 1) -> npt.NDArray[np.uint8]:
    """Quantizes f32 rows [rows, n] to raw GGUF rows of a ggml type (Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, Q4_1)."""

def config_limits() -> dict[str, int]:
    """Upper bounds of the hyper-parameters the loader accepts (model/limits.h)."""

def read_bandwidth(n_threads: int, bytes: int = 1073741824, reps: int = 5) -> float: ...

# Kernel test hooks (tests/test_kernels.py): one kernel set's kernels on raw blocks.
def kernel_quantize(set: str, x: npt.ArrayLike, /) -> tuple[Any, ...]: ...
def kernel_matmul(
    set: str, type_id: int, w: npt.ArrayLike, rows: int, x: npt.ArrayLike, /
) -> npt.NDArray[np.float32]: ...
def kernel_quantize_q8k(set: str, x: npt.ArrayLike, /) -> bytes: ...
def kernel_gemm(
    set: str, type_id: int, w: npt.ArrayLike, rows: int, x: npt.ArrayLike, /
) -> npt.NDArray[np.float32]: ...
def kernel_gemm_x16(
    set: str, type_id: int, w: npt.ArrayLike, rows: int, x: npt.ArrayLike, /
) -> npt.NDArray[np.float32]: ...
def _arm_fault(stage: str, nth: int) -> None:
    """Tests only: the nth pass through the named stage raises MemoryError (runtime/fault.h)."""

def kernel_vec(set: str, op: str, a: np.ndarray, b: np.ndarray, alpha: float = 0.0) -> Any: ...
def kernel_kv_scores(
    set: str, type_id: int, rows: np.ndarray, n: int, q: npt.ArrayLike, scale: float = 1.0
) -> np.ndarray: ...
def kernel_kv_wsum(
    set: str, type_id: int, rows: np.ndarray, n: int, w: npt.ArrayLike, acc: npt.ArrayLike
) -> np.ndarray: ...
def kernel_exp_sum(set: str, x: npt.ArrayLike, m: float) -> tuple[np.ndarray, float]: ...
