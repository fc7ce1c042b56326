"""Inference on dask arrays: the network's forward built into the array's task graph, computed
chunk by chunk on the threaded scheduler or a local cluster, in memory bounded by the chunks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mlp

da = pytest.importorskip("dask.array", reason="dask inference needs dask (the dask extra)")
import dask  # noqa: E402

#: Chunks of the model's own inference batch (``predict``'s ``batch_size``): the same matrix
#: products, so float64 results are bit-equal.
ROWS = 4096


@pytest.fixture(scope="module")
def mnist():
    return mlp.data.load(download=False)


@pytest.fixture(scope="module", params=["float32", "float64"])
def trained(request, mnist):
    model = mlp.MLP([784, 64, 10], dtype=request.param, seed=5)
    model.fit(mnist.x_train[:6000], mnist.y_train[:6000], epochs=1, batch_size=100)
    return model


def test_predictions_on_dask_equal_numpys(trained, mnist):
    x = da.from_array(mnist.x_test, chunks=(ROWS, 784))
    labels, proba = trained.predict(x), trained.predict_proba(x)
    assert isinstance(labels, da.Array) and isinstance(proba, da.Array)  # lazy
    assert proba.chunks[0] == x.chunks[0]
    with dask.config.set(scheduler="threads"):
        labels, proba = dask.compute(labels, proba)
    np.testing.assert_array_equal(labels, trained.predict(mnist.x_test))
    expected = trained.predict_proba(mnist.x_test)
    if trained.dtype_name == "float64":
        np.testing.assert_array_equal(proba, expected)  # bit-equal
    else:
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-6)
    # Any chunking, floats in the model dtype too.
    features = (mnist.x_test / 255.0).astype(trained.dtype_name)
    chunked = da.from_array(features, chunks=(999, 300))
    np.testing.assert_array_equal(trained.predict(chunked).compute(),
                                  trained.predict(features))


def test_evaluate_on_dask_equals_numpys(trained, mnist):
    x = da.from_array(mnist.x_test, chunks=(ROWS, 784))
    y = da.from_array(mnist.y_test, chunks=ROWS)
    got = trained.evaluate(x, y)
    expected = trained.evaluate(mnist.x_test, mnist.y_test, scale=1 / 255)
    assert got["accuracy"] == expected["accuracy"] > 0.85
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-12 if
                                        trained.dtype_name == "float64" else 1e-5)


def test_nothing_is_computed_until_asked():
    calls = []

    def counted(block):
        calls.append(len(block))
        return block

    x = da.ones((1000, 6), chunks=(250, 6), dtype="float32")
    x = x.map_blocks(counted, meta=np.empty((0, 0), dtype="float32"))
    out = mlp.MLP([6, 4, 3]).predict_proba(x)
    assert calls == [] and out.shape == (1000, 3)
    assert out.compute().shape == (1000, 3) and sorted(calls) == [250] * 4


def test_bad_dask_inputs_are_one_clear_error():
    model = mlp.MLP([6, 3])
    x = np.ones((100, 6), dtype="float32")
    x[57, 2] = np.nan
    lazy = model.predict(da.from_array(x, chunks=(50, 6)))
    with pytest.raises(ValueError, match="1 NaN or infinite value.* rows 50 to 99"):
        lazy.compute()
    labels = da.from_array(np.arange(100) % 4, chunks=50)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\): 25 of 100"):
        model.evaluate(da.ones((100, 6), chunks=(50, 6), dtype="float32"), labels)
    with pytest.raises(ValueError, match=r"x of shape \(N, 6\), got \(10, 5\)"):
        model.predict(da.ones((10, 5), chunks=5))
    with pytest.raises(TypeError, match="dask arrays are lazy.*x.compute()"):
        mlp.MLP([6, 3]).fit(da.ones((10, 6), chunks=5), np.zeros(10, dtype=np.int64))


def test_a_local_cluster_of_two_processes_predicts_the_same(trained, mnist):
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed")
    x = da.from_array(mnist.x_test, chunks=(2500, 784))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        labels = trained.predict(x).compute()
        result = trained.evaluate(x, da.from_array(mnist.y_test, chunks=2500))
    np.testing.assert_array_equal(labels, trained.predict(mnist.x_test))
    assert result["accuracy"] == trained.evaluate(mnist.x_test, mnist.y_test,
                                                  scale=1 / 255)["accuracy"]


#: Predicts on a lazily drawn float32 set of 2.2 GB with its data segment limited to 1 GiB.
BOUNDED = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import dask, dask.array as da
    import mlp

    LIMIT = 1 << 30
    resource.setrlimit(resource.RLIMIT_DATA, (LIMIT, LIMIT))
    rows = 700_000
    try:  # the limit holds: the set itself does not fit
        np.ones((rows, 784), dtype=np.float32)
    except MemoryError:
        pass
    else:
        sys.exit("the memory limit does not hold")
    model = mlp.MLP([784, 32, 10], seed=0)
    x = da.random.default_rng(0).random((rows, 784), chunks=(20_000, 784), dtype=np.float32)
    assert x.nbytes > 2 * LIMIT
    with dask.config.set(scheduler="threads", num_workers=2):
        counts = np.bincount(model.predict(x).compute(), minlength=10)
    assert counts.sum() == rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{x.nbytes / 2**30:.2f} GiB predicted in a peak RSS of {peak / 2**30:.2f} GiB")
""")


def test_prediction_memory_is_bounded_by_the_chunks_not_the_data():
    done = subprocess.run([sys.executable, "-c", BOUNDED], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    assert "GiB predicted in a peak RSS of" in done.stdout
