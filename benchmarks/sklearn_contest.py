"""scikit-learn's ``MLPClassifier`` against ours (:class:`mlp.sklearn.MLPClassifier`), in
interleaved rounds.

Both estimators get the same settings (:func:`settings`): hidden layers :data:`HIDDEN`, Adam,
batch :data:`BATCH`, ``max_iter`` epochs with ``tol=0`` and ``n_iter_no_change`` above
``max_iter``, so that both run every epoch, and the same ``random_state``. Both train on the same
data (:func:`dataset`): MNIST (the copy shipped with the package, pixels / 255) and
scikit-learn's ``load_digits`` (pixels / 16), each with a held-out test split, in float64
(scikit-learn's default) and float32 (which both keep as float32).

Each round fits every contestant once per data set and dtype, the contestants' order rotating
from round to round; each fit runs in a fresh process (``python -m benchmarks.sklearn_contest
NAME ...``) that warms up with a one-epoch fit on the first :data:`WARMUP_ROWS` rows, then times
one ``fit`` (wall clock) and prints one JSON line: seconds, ``n_iter_``, seconds per epoch (the
fit's time over ``n_iter_``), test accuracy and the shapes of ``coefs_``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from .contest import UNAVAILABLE, Unavailable, run_child

#: The settings both estimators share.
HIDDEN, BATCH, EPOCHS = (512, 512), 200, 2
DATASETS, DTYPES = ("mnist", "digits"), ("float64", "float32")
#: Rows of the warm-up fit each process runs before its timed one (two full batches).
WARMUP_ROWS = 2 * BATCH
#: Held-out share of ``load_digits`` (stratified, fixed seed); MNIST has its own test set.
DIGITS_TEST = 0.25
#: The contestants: scikit-learn's estimator, ours on NumPy, ours on CuPy (GPU runs only).
LABELS = {"sklearn": "scikit-learn MLPClassifier", "ours": "ours: mlp.sklearn, numpy",
          "ours-cupy": "ours: mlp.sklearn, cupy"}
CPU_NAMES, GPU_NAMES = ("sklearn", "ours"), ("sklearn", "ours", "ours-cupy")
#: How to install the optional extra both estimators need.
SKLEARN_INSTALL = 'pip install ".[sklearn]"'


def settings(hidden: tuple[int, ...], epochs: int, seed: int) -> dict[str, Any]:
    """The keyword arguments both estimators are built with: they run exactly ``epochs``
    epochs (``tol=0``, ``n_iter_no_change`` beyond ``max_iter``)."""
    return {"hidden_layer_sizes": tuple(hidden), "solver": "adam", "batch_size": BATCH,
            "max_iter": epochs, "tol": 0.0, "n_iter_no_change": epochs + 1,
            "random_state": seed}


def estimator(name: str, hidden: tuple[int, ...], epochs: int, seed: int) -> Any:
    """Contestant ``name``'s estimator with :func:`settings`; :class:`Unavailable` when its
    library is not installed or CuPy has no GPU."""
    try:
        from sklearn.neural_network import MLPClassifier as Theirs

        from mlp.sklearn import MLPClassifier as Ours
    except ImportError:
        raise Unavailable(f"scikit-learn is not installed: {SKLEARN_INSTALL}") from None
    kwargs = settings(hidden, epochs, seed)
    if name == "sklearn":
        return Theirs(**kwargs)
    if name == "ours":
        return Ours(**kwargs, backend="numpy")
    if name == "ours-cupy":
        import backends

        try:
            backends.get("cupy")
        except backends.BackendError as exc:
            raise Unavailable(f"no CuPy backend: {exc}") from None
        return Ours(**kwargs, backend="cupy")
    raise ValueError(f"unknown contestant {name!r}")


@functools.lru_cache(maxsize=2)
def _raw(name: str) -> tuple[numpy.ndarray, ...]:
    """Training and test inputs and labels of ``name``, as stored (before scaling)."""
    if name == "mnist":
        from mlp import data

        mnist = data.load("mnist")
        return mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=DIGITS_TEST, random_state=0, stratify=y)
        return x_train, y_train, x_test, y_test
    raise ValueError(f"unknown data set {name!r}")


def dataset(name: str, dtype: str, samples: int | None = None) -> tuple[numpy.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` of ``name`` (``"mnist"``: pixels / 255,
    ``"digits"``: pixels / 16) in ``dtype``; ``samples`` keeps the first rows of each split."""
    x_train, y_train, x_test, y_test = _raw(name)
    scale = 255.0 if name == "mnist" else 16.0
    n, m = (None, None) if samples is None else (samples, max(1, samples // 2))
    return (numpy.asarray(x_train[:n], dtype=dtype) / numpy.asarray(scale, dtype=dtype),
            y_train[:n], numpy.asarray(x_test[:m], dtype=dtype) / numpy.asarray(scale, dtype),
            y_test[:m])


def fit_once(name: str, data: str, dtype: str, hidden: tuple[int, ...], epochs: int, seed: int,
             samples: int | None = None) -> dict[str, Any]:
    """One warm-up fit, then one timed fit of contestant ``name`` on ``data`` in ``dtype``."""
    from sklearn.exceptions import ConvergenceWarning

    x_train, y_train, x_test, y_test = dataset(data, dtype, samples)
    warm = min(WARMUP_ROWS, len(y_train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
        estimator(name, hidden, 1, seed).fit(x_train[:warm], y_train[:warm])
        model = estimator(name, hidden, epochs, seed)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "n_iter": int(model.n_iter_),
            "per_epoch": seconds / int(model.n_iter_),
            "accuracy": float(model.score(x_test, y_test)),
            "dtype": str(model.coefs_[0].dtype).rsplit(".", 1)[-1],
            "shapes": [[int(d) for d in c.shape] for c in model.coefs_],
            "train": len(y_train), "test": len(y_test)}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.sklearn_contest NAME``: one contestant's timed fit, a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sklearn_contest")
    parser.add_argument("name", choices=list(LABELS))
    parser.add_argument("--data", choices=DATASETS, default="mnist")
    parser.add_argument("--dtype", choices=DTYPES, default="float64")
    parser.add_argument("--hidden", default=",".join(map(str, HIDDEN)))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    try:
        result = fit_once(args.name, args.data, args.dtype, hidden, args.epochs, args.seed,
                          args.samples)
    except Unavailable as exc:
        print(exc, file=sys.stderr)
        return UNAVAILABLE
    print(json.dumps(result))
    return 0


# --- the rounds ----------------------------------------------------------------------------

#: What a round keeps of each fit: seconds per epoch, test accuracy, epochs run, the shapes and
#: the dtype of ``coefs_``.
RECORDED = ("per_epoch", "accuracy", "n_iter", "shapes", "dtype")


@dataclass
class SklearnContest:
    """Interleaved rounds of the contestants ``names`` on every data set and dtype.

    ``runs[data][dtype][name]`` holds one value per round of each of :data:`RECORDED`;
    ``missing[name]`` says why a contestant has none. ``samples`` keeps the first rows of each
    split (a smoke run); ``in_process`` fits in this process (a check that the contestants run,
    not a timing).
    """

    names: tuple[str, ...] = CPU_NAMES
    datasets: tuple[str, ...] = DATASETS
    dtypes: tuple[str, ...] = DTYPES
    hidden: tuple[int, ...] = HIDDEN
    epochs: int = EPOCHS
    samples: int | None = None
    in_process: bool = False
    runs: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path(__file__).resolve().parent.parent
    _round: int = field(default=0, init=False, repr=False)

    def order(self, round_index: int) -> tuple[str, ...]:
        """The contestants of round ``round_index``, rotated by one place per round."""
        k = round_index % len(self.names)
        return self.names[k:] + self.names[:k]

    def _fit(self, name: str, data: str, dtype: str, seed: int) -> dict[str, Any]:
        if self.in_process:
            return fit_once(name, data, dtype, self.hidden, self.epochs, seed, self.samples)
        cmd = [sys.executable, "-m", "benchmarks.sklearn_contest", name, "--data", data,
               "--dtype", dtype, "--hidden", ",".join(map(str, self.hidden)),
               "--epochs", str(self.epochs), "--seed", str(seed)]
        if self.samples is not None:
            cmd += ["--samples", str(self.samples)]
        return run_child(cmd, self.cwd, 1800, f"{name} on {data} {dtype}")

    def run_round(self) -> None:
        """Every available contestant once per data set and dtype, in this round's order; the
        round's ``random_state`` is its index, the same for every contestant."""
        seed, order = self._round, self.order(self._round)
        self._round += 1
        for data in self.datasets:
            for dtype in self.dtypes:
                for name in order:
                    if name in self.missing:
                        continue
                    try:
                        result = self._fit(name, data, dtype, seed)
                    except Unavailable as exc:
                        self.missing[name] = str(exc)
                        continue
                    self.rows[data] = [result["train"], result["test"]]
                    one = self.runs.setdefault(data, {}).setdefault(dtype, {}).setdefault(
                        name, {key: [] for key in RECORDED})
                    for key in one:
                        one[key].append(result[key])

    def to_json(self) -> dict[str, Any]:
        """What the report reads (stored in the benchmark's ``extra_info["sklearn"]``)."""
        return {"names": list(self.names), "hidden": list(self.hidden), "batch": BATCH,
                "epochs": self.epochs, "rounds": self._round, "in_process": self.in_process,
                "rows": self.rows, "runs": self.runs, "missing": self.missing}


if __name__ == "__main__":
    raise SystemExit(main())
