"""What each benchmark measures: the one description, shown as the report's last section.

The suite (:mod:`benchmarks.test_bench`), its workloads (:mod:`benchmarks.workloads`) and the
report (:mod:`benchmarks.report`) refer here instead of repeating it.
"""

from __future__ import annotations

from .workloads import EPOCH_SAMPLES, QUICK_BATCH, QUICK_DTYPE, QUICK_SIZE, epoch_batches

_BATCHES = epoch_batches(EPOCH_SAMPLES, QUICK_BATCH)

#: The epoch headline's workload in one sentence (the report's headline repeats only this).
EPOCH_WORKLOAD = (
    f"{QUICK_SIZE}, batch {QUICK_BATCH}, {QUICK_DTYPE}, Adam, one epoch over {EPOCH_SAMPLES} "
    "random uint8 images (784 pixels) with int64 labels"
)

WHAT_IS_MEASURED = f"""## What is measured

Each figure is the median of its benchmark's rounds (pytest-benchmark). Ratios compare numbers
from the same run on the same machine.

- **Forward**: `model.layers.forward(x, train=True)`, the buffered internal pass of a step.
- **Backward**: the loss gradient (`loss.backward()`) and `model.layers.backward(...)`, repeated
  on one forward pass and loss computed once before timing (backward only reads what forward
  stored, so every repetition does the same work).
- **Step**: `model.train_step(x, y)` with Adam: forward, loss, backward and the update.
- **Floor**: only the matrix products one step needs — `x @ W` per layer, `h.T @ g` per layer and
  `g @ W.T` for every layer but the first — same shapes, dtype and backend, into preallocated
  `out=` buffers where the library has them (NumPy, CuPy, PyTorch): the best case.
- **PyTorch**: the same network as `torch.nn.Sequential(Linear, ReLU, …)` with autograd,
  `torch.optim.Adam` (foreach default), `CrossEntropyLoss` and `zero_grad(set_to_none=True)`, same
  shapes, dtype and device: what a user would write instead.
- **Step GFLOP/s**: FLOPs of the step's matrix products (`2·N·Σ in·out` forward, twice that
  backward less the first layer's `dX`) over the step time.
- **× floor** = step / floor (1 is the floor; lower is better). **× PyTorch** = PyTorch / ours
  (above 1: we are faster).
- **Epoch**: {EPOCH_WORKLOAD}, through `mlp.train.Trainer` ({len(_BATCHES) - 1} batches of
  {QUICK_BATCH} and one of {_BATCHES[-1]}; batches gathered from the uint8 set and converted to
  float on the device; no test set), its GEMM floor (the same {len(_BATCHES)} steps of matrix
  products only) and the PyTorch peer's epoch (batches gathered from a uint8 tensor by a random
  permutation and converted to float / 255, loss and accuracy summed on the device). Both keep the
  data on the device and leave its transfer out of the timing.
- GPU timings synchronise the device inside the timed function.
- Fixed-batch benchmarks use a learning rate of 1e-4 so that repeating one batch thousands of times
  does not memorise it (the cost of an update does not depend on the learning rate).

Reproduce with `mlp bench` (CPU suite), `mlp bench --quick` (the {QUICK_SIZE} / batch {QUICK_BATCH}
/ {QUICK_DTYPE} rows and the epoch), `mlp bench --gpu` (the GPU suite); `mlp bench --help` lists
the options.
"""
