"""The direct cuBLAS products: their layout arguments, tested without a GPU against a NumPy
model of column-major GEMM (what cuBLAS computes from them); on a GPU, against
``cupy.matmul``."""

from __future__ import annotations

import numpy as np
import pytest

from backends.cublas import (
    OP_N,
    OP_T,
    GemmArguments,
    column_major_gemm,
    gemm_arguments,
    order,
)


def operand(rng: np.random.Generator, shape: tuple[int, int], layout: str,
            dtype: str) -> np.ndarray:
    """A ``shape`` matrix lying C- or F-contiguous (an F one is a transposed C array, as the
    backward pass's ``x.T`` and ``W.T`` are)."""
    if layout == "C":
        return rng.standard_normal(shape).astype(dtype)
    return rng.standard_normal(shape[::-1]).astype(dtype).T


def emulated(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    args = gemm_arguments(a.shape, order(a), b.shape, order(b))
    out = np.full((a.shape[0], b.shape[1]), np.nan, dtype=a.dtype)  # every entry written
    column_major_gemm(args, np.ravel(b, order="K"), np.ravel(a, order="K"), out.reshape(-1))
    return out


#: The step's products at 784-512-10 with a batch of 128: x @ W, then for the gradients
#: x.T @ g and g @ W.T (F-contiguous operands), and odd and degenerate shapes.
SHAPES = [((128, 784), (784, 512)), ((784, 128), (128, 512)), ((128, 10), (10, 512)),
          ((1, 784), (784, 10)), ((7, 1), (1, 3)), ((5, 3), (3, 1)), ((33, 17), (17, 65))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layouts", ["CC", "FC", "CF", "FF"])
@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_the_arguments_compute_the_row_major_product(a_shape, b_shape, layouts, dtype):
    rng = np.random.default_rng(hash((a_shape, b_shape, layouts)) % 2**32)
    a, b = operand(rng, a_shape, layouts[0], dtype), operand(rng, b_shape, layouts[1], dtype)
    tolerance = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(emulated(a, b), a @ b, rtol=tolerance, atol=tolerance)


def test_the_mapping_of_each_layout():
    # C = a @ b read column-major is C^T = b^T a^T: b's buffer first.
    assert gemm_arguments((128, 784), "C", (784, 512), "C") == GemmArguments(
        OP_N, OP_N, 512, 128, 784, 512, 784, 512)
    transposed = gemm_arguments((784, 128), "F", (128, 512), "C")  # x.T @ g
    assert (transposed.transa, transposed.transb, transposed.ldb) == (OP_N, OP_T, 784)
    backward = gemm_arguments((128, 512), "C", (512, 784), "F")  # g @ W.T
    assert (backward.transa, backward.transb, backward.lda) == (OP_T, OP_N, 512)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\) do not multiply"):
        gemm_arguments((2, 3), "C", (4, 5), "C")


def test_a_strided_view_has_no_order():
    x = np.zeros((6, 6))
    assert (order(x), order(x.T), order(x[::2, ::2]), order(x[:1])) == ("C", "F", None, "C")


# --- on a GPU --------------------------------------------------------------------------------


def cupy_operands(cupy, a_shape, b_shape, layouts, dtype):
    rng = np.random.default_rng(7)
    a = cupy.asarray(operand(rng, a_shape, layouts[0], dtype))
    b = cupy.asarray(operand(rng, b_shape, layouts[1], dtype))
    assert (order(a), order(b)) == (layouts[0], layouts[1]) or 1 in a_shape + b_shape
    return a, b


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_direct_products_equal_cupys(dtype, get_backend):
    backend = get_backend("cupy")
    import cupy

    gemm = backend.ops.direct_gemm()
    assert gemm is not None, backend.ops.gemm_failure
    with backend.activate():
        for a_shape, b_shape in SHAPES:
            for layouts in ("CC", "FC", "CF", "FF"):
                a, b = cupy_operands(cupy, a_shape, b_shape, layouts, dtype)
                out = cupy.full((a_shape[0], b_shape[1]), cupy.nan, dtype=dtype)
                got = backend.ops.matmul(a, b, out=out)
                assert got is out and bool(cupy.isfinite(out).all())
                tolerance = 1e-12 if dtype == "float64" else 1e-4
                cupy.testing.assert_allclose(out, cupy.matmul(a, b), rtol=tolerance,
                                             atol=tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_captured_product_replays_the_eager_one_bit_for_bit(dtype, get_backend):
    backend = get_backend("cupy")
    import cupy

    ops = backend.ops
    with backend.activate():
        a, b = cupy_operands(cupy, (128, 784), (784, 512), "CC", dtype)
        eager = ops.matmul(a, b)
        out = cupy.empty_like(eager)
        replay, captured = backend.capture(lambda: ops.matmul(a, b, out=out))
        out.fill(cupy.nan)
        replay()
        backend.synchronize()
        cupy.testing.assert_array_equal(captured, eager)


# --- the choice between the direct products and CuPy's own, without a GPU ---------------------


def bare_cupy_ops():
    """A ``CupyOps`` over NumPy (its kernels aside): what ``matmul`` chooses, on the CPU."""
    import contextlib

    from backends.cupy_ops import CupyOps

    ops = CupyOps.__new__(CupyOps)
    ops.np, ops.device, ops._gemm, ops.gemm_failure = np, contextlib.nullcontext(), None, None
    return ops


def test_products_that_fail_their_check_fall_back_with_one_warning(monkeypatch):
    import backends.cupy_ops as cupy_ops

    def unavailable(*args):
        raise OSError("no libcublas.so is loaded")

    monkeypatch.setattr(cupy_ops, "DirectGemm", unavailable)
    ops, a, b = bare_cupy_ops(), np.ones((3, 4)), np.ones((4, 2))
    with pytest.warns(RuntimeWarning, match=r"direct cuBLAS matrix products cannot be used "
                      r"\(OSError: no libcublas.so is loaded\); CuPy's own run instead"):
        np.testing.assert_array_equal(ops.matmul(a, b), a @ b)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.matmul(a, b)  # decided once
    assert ops.direct_gemm() is None and ops.gemm_failure.startswith("OSError")


def test_products_that_pass_their_check_run_direct_where_they_accept(monkeypatch):
    import backends.cupy_ops as cupy_ops

    calls = []

    class Recording:
        def __init__(self, cupy, device):
            pass

        def accepts(self, a, b, out):
            return a.ndim == 2

        def __call__(self, a, b, out=None):
            calls.append(a.shape)
            return np.matmul(a, b, out=out)

    checked = []
    monkeypatch.setattr(cupy_ops, "DirectGemm", Recording)
    monkeypatch.setattr(cupy_ops, "check_against_cupy", lambda *args: checked.append(1))
    ops = bare_cupy_ops()
    ops.matmul(np.ones((3, 4)), np.ones((4, 2)))
    ops.matmul(np.ones((2, 3, 4)), np.ones((4, 2)))  # not accepted: CuPy's own
    assert calls == [(3, 4)] and checked == [1]
