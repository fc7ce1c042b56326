"""The input pipeline's first stage: a data set on the model's device, and the scaling that
turns its rows into features (uint8 pixels 0..255 to [0, 1]; floats as they are)."""

from __future__ import annotations

from typing import Any

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


class DeviceData:
    """Inputs ``(N, D)`` and integer labels ``(N,)`` on the model's device.

    ``x`` keeps its dtype: uint8 pixels, or floats; ``scale`` is the factor that turns a batch
    into features (1/255 for pixels, see :func:`input_scale`). ``model`` is the
    :class:`~mlp.MLP` whose device and input width the set takes.

    Raises:
        ValueError: shapes that do not fit the model or each other.
        TypeError: inputs that are neither uint8 nor floating point, or labels not integers.
    """

    def __init__(self, model: Any, images: Any, labels: Any) -> None:
        with model.backend.activate():
            self.x = model.to_device(images)
            self.y = model.to_device(labels)
        self.n = int(self.x.shape[0])
        if self.x.ndim != 2 or self.x.shape[1] != model.sizes[0]:
            raise ValueError(f"expected inputs of shape (N, {model.sizes[0]}), "
                             f"got {tuple(self.x.shape)}")
        if tuple(self.y.shape) != (self.n,):
            raise ValueError(f"expected labels of shape ({self.n},), got {tuple(self.y.shape)}")
        if not model.xp.isdtype(self.y.dtype, "integral"):
            raise TypeError(f"labels must be integer class indices, not {self.y.dtype}")
        self.scale = input_scale(model.xp, self.x.dtype)
