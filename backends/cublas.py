"""Matrix products on CuPy arrays through direct calls of cuBLAS's ``cublasGemmEx``.

CuPy refuses any cuBLAS call of its own while a stream is capturing a CUDA graph, so a step
whose products go through ``cupy.matmul`` cannot be captured. :class:`DirectGemm` calls the
``libcublas`` CuPy itself loaded, through ``ctypes``, with a handle of its own: per call it
sets the handle's stream (CuPy's current one), then its workspace (setting the stream resets
the workspace), then runs the product. The eager and the captured step both use it, so both
run the same algorithm and give the same numbers.

cuBLAS is column-major; a C-contiguous ``(r, c)`` matrix read column-major is its transpose.
:func:`gemm_arguments` maps the product ``a @ b`` of C- or F-contiguous operands into a
C-contiguous result onto ``cublasGemmEx``'s arguments; :func:`column_major_gemm` is a NumPy
model of what cuBLAS computes from those arguments, so the mapping is tested without a GPU.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any

#: cuBLAS's enumerations (cublas_api.h, library_types.h).
OP_N, OP_T = 0, 1
CUDA_R_32F, CUDA_R_64F = 0, 1
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70
GEMM_DEFAULT = -1
#: The workspace each handle gets (cuBLAS's own default on recent GPUs is of this order).
WORKSPACE_BYTES = 32 << 20


@dataclass(frozen=True)
class GemmArguments:
    """``cublasGemmEx``'s layout arguments for ``C = a @ b``: ``C (m', n')`` column-major is
    ``op(first) @ op(second)``, where ``first`` is ``b``'s buffer and ``second`` ``a``'s."""

    transa: int
    transb: int
    m: int
    n: int
    k: int
    lda: int
    ldb: int
    ldc: int


def order(x: Any) -> str | None:
    """``"C"`` or ``"F"``: how the 2-D array ``x`` lies in memory (C wins for arrays that are
    both, such as a single row); ``None`` when it is neither (a strided view)."""
    flags = x.flags
    if flags.c_contiguous:
        return "C"
    if flags.f_contiguous:
        return "F"
    return None


def gemm_arguments(a_shape: tuple[int, int], a_order: str, b_shape: tuple[int, int],
                   b_order: str) -> GemmArguments:
    """The arguments for the C-contiguous product ``a (m, k) @ b (k, n)``.

    Read column-major, the C-contiguous result ``(m, n)`` is ``C^T (n, m) = b^T @ a^T``. A
    C-contiguous ``b`` read column-major already is ``b^T`` (``OP_N``, leading dimension
    ``n``); an F-contiguous one is ``b`` itself (``OP_T``, leading dimension ``k``); likewise
    for ``a`` with ``k`` and ``m``.
    """
    (m, k), (k2, n) = a_shape, b_shape
    if k != k2:
        raise ValueError(f"shapes {a_shape} and {b_shape} do not multiply")
    transa, lda = (OP_N, n) if b_order == "C" else (OP_T, k)
    transb, ldb = (OP_N, k) if a_order == "C" else (OP_T, m)
    # A leading dimension of 0 is invalid even for an empty matrix.
    return GemmArguments(transa, transb, n, m, k, max(lda, 1), max(ldb, 1), max(n, 1))


def column_major_gemm(args: GemmArguments, first: np.ndarray, second: np.ndarray,
                      out: np.ndarray) -> None:
    """What ``cublasGemmEx`` computes (alpha 1, beta 0) from ``args`` and the flat buffers
    ``first``, ``second`` (read) and ``out`` (written), in NumPy: the model the layout mapping
    is tested against."""
    def matrix(buffer: np.ndarray, trans: int, rows: int, cols: int, ld: int) -> np.ndarray:
        stored_rows, stored_cols = (rows, cols) if trans == OP_N else (cols, rows)
        stored = np.lib.stride_tricks.as_strided(
            buffer, (stored_rows, stored_cols), (buffer.itemsize, ld * buffer.itemsize))
        return stored if trans == OP_N else stored.T

    op_a = matrix(first, args.transa, args.m, args.k, args.lda)
    op_b = matrix(second, args.transb, args.k, args.n, args.ldb)
    result = np.lib.stride_tricks.as_strided(out, (args.m, args.n),
                                             (out.itemsize, args.ldc * out.itemsize))
    result[...] = op_a @ op_b


class DirectGemm:
    """``a @ b`` for 2-D CuPy arrays of one dtype (float32 or float64), C- or F-contiguous,
    into a fresh or given C-contiguous ``out``, on CuPy's current stream, by ``cublasGemmEx``
    (compute type 32F, or 32F_FAST_TF32 with ``tf32``, or 64F).

    Raises:
        OSError: no loaded ``libcublas`` was found (CuPy has not loaded it).
        RuntimeError: a cuBLAS call failed (its status in the message).
    """

    def __init__(self, cupy: Any, device: Any, tf32: bool = False) -> None:
        self.cupy, self.device, self.tf32 = cupy, device, tf32
        self.lib = ctypes.CDLL(_loaded_cublas(cupy, device))
        handle = ctypes.c_void_p()
        with device:
            self._check("cublasCreate_v2", self.lib.cublasCreate_v2(ctypes.byref(handle)))
            self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
        self.handle = handle
        gemm = self.lib.cublasGemmEx
        gemm.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                         ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                         ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                         ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._scalars = {np.dtype(np.float32): (ctypes.c_float(1.0), ctypes.c_float(0.0)),
                         np.dtype(np.float64): (ctypes.c_double(1.0), ctypes.c_double(0.0))}

    def accepts(self, a: Array, b: Array, out: Array | None) -> bool:
        """Whether :meth:`__call__` takes these operands (else use ``cupy.matmul``)."""
        return (a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype
                and a.dtype in self._scalars and a.shape[1] == b.shape[0]
                and order(a) is not None and order(b) is not None
                and (out is None or (out.flags.c_contiguous and out.dtype == a.dtype
                                     and out.shape == (a.shape[0], b.shape[1]))))

    def __call__(self, a: Array, b: Array, out: Array | None = None) -> Array:
        cupy = self.cupy
        args = gemm_arguments(a.shape, order(a), b.shape, order(b))
        with self.device:
            if out is None:
                out = cupy.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
            if out.size == 0:
                return out
            if a.shape[1] == 0:
                out.fill(0)
                return out
            lib, handle = self.lib, self.handle
            stream = cupy.cuda.get_current_stream().ptr
            self._check("cublasSetStream_v2", lib.cublasSetStream_v2(handle,
                                                                     ctypes.c_void_p(stream)))
            self._check("cublasSetWorkspace_v2", lib.cublasSetWorkspace_v2(
                handle, ctypes.c_void_p(self.workspace.data.ptr),
                ctypes.c_size_t(self.workspace.nbytes)))
            if a.dtype == np.float64:
                kind, compute = CUDA_R_64F, COMPUTE_64F
            else:
                kind = CUDA_R_32F
                compute = COMPUTE_32F_FAST_TF32 if self.tf32 else COMPUTE_32F
            alpha, beta = self._scalars[np.dtype(a.dtype)]
            self._check("cublasGemmEx", lib.cublasGemmEx(
                handle, args.transa, args.transb, args.m, args.n, args.k,
                ctypes.byref(alpha), b.data.ptr, kind, args.lda, a.data.ptr, kind, args.ldb,
                ctypes.byref(beta), out.data.ptr, kind, args.ldc, compute, GEMM_DEFAULT))
        return out

    @staticmethod
    def _check(name: str, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"{name} failed with cuBLAS status {status}")


def _loaded_cublas(cupy: Any, device: Any) -> str:
    """The path of the ``libcublas`` shared library CuPy loaded into this process."""
    with device:  # a first product of CuPy's own makes sure the library is mapped
        cupy.ones((2, 2), dtype=cupy.float32) @ cupy.ones((2, 2), dtype=cupy.float32)
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = path.rsplit("/", 1)[-1]
            if name.startswith("libcublas.so"):
                return path
    raise OSError("no libcublas.so is loaded in this process (is CuPy's cuBLAS installed?)")
