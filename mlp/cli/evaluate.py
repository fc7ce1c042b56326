"""``mlp evaluate``: test loss, accuracy and confusion matrix of a checkpoint."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import backends

from ..files import shown
from . import settings as rules
from .settings import UsageError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .. import checkpoint, data
    from ..inputs import PIXEL_SCALE, DeviceData

    ckpt = checkpoint.load(args.checkpoint, parameters_only=True)
    name = args.dataset or ckpt.meta.get("dataset", "mnist")
    dataset = data.load(name, args.data_dir, split="test", progress=sys.stderr.isatty())
    rules.check_architecture(ckpt.config["sizes"], dataset, args.checkpoint)
    try:
        model = checkpoint.restore(ckpt, backend=args.backend, device=args.device)
    except backends.BackendError as exc:
        raise UsageError(str(exc)) from None
    test = DeviceData(model, dataset.x_test, dataset.y_test)
    result = model.evaluate(test.x, test.y, scale=PIXEL_SCALE)
    predicted = model.backend.to_numpy(model.predict(test.x)).tolist()  # uint8: scaled there
    counts = Counter(zip(dataset.y_test.tolist(), predicted, strict=True))
    k = dataset.num_classes
    print(f"{shown(args.checkpoint)}: {name} test set, {test.n} images, "
          f"backend {model.backend.name}")
    print(f"test loss {result['loss']:.4f}  test accuracy {100 * result['accuracy']:.2f}%")
    print("confusion matrix (rows: true class, columns: predicted)")
    print("      " + "".join(f"{j:>6}" for j in range(k)))
    for i in range(k):
        print(f"{i:>6}" + "".join(f"{counts[i, j]:>6}" for j in range(k)))
    return 0
