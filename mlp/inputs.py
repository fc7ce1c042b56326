"""The input pipeline: a data set on the model's device, the scaling that turns its rows into
features (uint8 pixels 0..255 to [0, 1]; floats as they are), and its rows block by block,
converted into one reused buffer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from backends import lazy

from ._xp import Array, array_namespace
from .checks import check_labels, check_rows

#: Inputs of dtype uint8 are pixels 0..255, scaled by this factor to [0, 1].
PIXEL_SCALE = 1.0 / 255.0


def input_scale(xp: Any, dtype: Any) -> float:
    """The factor turning inputs of ``dtype`` (of namespace ``xp``) into features: 1/255 for
    uint8 pixels, 1 for floating point.

    Raises:
        TypeError: any other dtype.
    """
    if dtype == xp.uint8:
        return PIXEL_SCALE
    if xp.isdtype(dtype, "real floating"):
        return 1.0
    raise TypeError(f"inputs must be uint8 pixels or floating point, not {dtype}")


def on_backend(backend: Any, x: Any) -> Array:
    """``x`` as an array of ``backend``'s library: its own arrays pass through, host data
    (NumPy arrays, lists) is copied onto its device.

    Raises:
        TypeError: ``x`` is a dask array (lazy: only inference takes those).
    """
    if lazy.is_lazy(x):
        raise TypeError("dask arrays are lazy and only predict, predict_proba and evaluate take "
                        "them; to train, load the data into memory first (x.compute())")
    try:
        if array_namespace(x) is backend.xp:
            return x
    except TypeError:
        pass
    return backend.asarray(x)


class DeviceData:
    """Inputs ``(N, D)`` and integer labels ``(N,)`` on the model's device.

    ``x`` keeps its dtype: uint8 pixels, or floats; ``scale`` is the factor that turns a batch
    into features (1/255 for pixels, see :func:`input_scale`). ``model`` is the
    :class:`~mlp.MLP` whose device and input width the set takes; ``which`` prefixes the set's
    name in the message about empty sets (``"validation "``). Values are not checked here (see
    :mod:`mlp.checks`).

    Raises:
        ValueError: no rows, or shapes that do not fit the model or each other.
        TypeError: inputs that are neither uint8 nor floating point, or labels not integers.
    """

    def __init__(self, model: Any, images: Any, labels: Any, which: str = "") -> None:
        with model.backend.activate():
            self.x = on_backend(model.backend, images)
            self.y = on_backend(model.backend, labels)
        check_rows(self.x, model.sizes[0], f"{which}x", shape_name="inputs")
        self.n = int(self.x.shape[0])
        check_labels(self.y, self.n, model.xp)
        self.scale = input_scale(model.xp, self.x.dtype)


class Converter:
    """Row blocks of a set, converted to features in ``dtype`` by the operations ``ops``: into
    one buffer reused from block to block where the operations write in place (grown when a
    larger block comes), else into fresh arrays."""

    def __init__(self, ops: Any, dtype: Any) -> None:
        self.ops, self.dtype = ops, dtype
        self._buffer: Array | None = None

    def blocks(self, x: Array, size: int, scale: float | None) -> Iterator[Array]:
        """``x``'s rows ``size`` at a time; with ``scale``, as ``x * scale`` in ``dtype`` (each
        block valid until the next), without it as they are."""
        n = x.shape[0]
        for i in range(0, n, size):
            xb = x[i : min(i + size, n), ...]  # the standard has no slices past the end
            if scale is not None:
                xb = self.ops.to_float(xb, scale, self.dtype, out=self._out(tuple(xb.shape)))
            yield xb

    def _out(self, shape: tuple[int, ...]) -> Array | None:
        if not self.ops.inplace:
            return None
        buf = self._buffer
        if buf is None or buf.shape[0] < shape[0] or tuple(buf.shape[1:]) != shape[1:]:
            buf = self._buffer = self.ops.buffer(shape, self.dtype)
        return buf[: shape[0], ...]
