"""ONNX export: the network's own inference forward run on ndonnx arrays, checked by
``onnx.checker`` and run by ONNX's reference evaluator and by onnxruntime against the NumPy
model on the whole MNIST test set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from array_api_compat import array_namespace

import mlp
from mlp.export import ExportError, onnx_model, to_onnx
from mlp.files import NotRegularFile
from mlp.inputs import PIXEL_SCALE
from mlp.layers import ACTIVATIONS, Layer

ndx = pytest.importorskip("ndonnx", reason="ONNX export needs ndonnx (the onnx extra)")
onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="the export check needs onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

#: Probabilities of the ONNX model against the NumPy model's, per dtype.
PROBA_TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@pytest.fixture(scope="module")
def mnist():
    return mlp.data.load(download=False)


@pytest.fixture(scope="module", params=["float32", "float64"])
def trained(request, mnist):
    model = mlp.MLP([784, 128, 64, 10], dtype=request.param, dropout=0.2, seed=3)
    model.fit(mnist.x_train[:12000], mnist.y_train[:12000], epochs=1, batch_size=100)
    return model


def runtime(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("pixels", [False, True], ids=["features", "pixels"])
def test_onnx_runtimes_agree_with_numpy_on_the_mnist_test_set(trained, mnist, pixels):
    images = mnist.x_test
    features = (images * PIXEL_SCALE).astype(trained.dtype_name)
    x = images if pixels else features
    model = onnx_model(trained, pixels=pixels)
    onnx.checker.check_model(model, full_check=True)
    expected = trained.predict_proba(features)
    labels = trained.predict(features)
    assert labels.shape == (10_000,) and 0.9 < np.mean(labels == mnist.y_test)
    tolerance = PROBA_TOLERANCE[trained.dtype_name]
    session, reference = runtime(model), ReferenceEvaluator(model)
    for run in (lambda xb: session.run(None, {"x": xb})[0],
                lambda xb: reference.run(None, {"x": xb})[0]):
        got = run(x)
        assert got.dtype == expected.dtype and got.shape == (10_000, 10)
        np.testing.assert_array_equal(np.argmax(got, axis=1), labels)
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
        for size in (1, 7):  # the batch dimension is free
            np.testing.assert_allclose(run(x[:size]), expected[:size], rtol=0, atol=tolerance)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_every_activation_and_output_exports(activation, output, mnist):
    loss = mlp.CrossEntropy() if output == "softmax" else None
    network = mlp.MLP([784, 32, 10], activation=activation, output=output, loss=loss, seed=1)
    x = (mnist.x_test[:500] * PIXEL_SCALE).astype("float32")
    got = runtime(onnx_model(network)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, network.predict_proba(x), rtol=0, atol=1e-5)
    if output == "logits":
        logits = runtime(onnx_model(network, output="logits")).run(None, {"x": x})[0]
        np.testing.assert_allclose(logits, network.forward(x), rtol=1e-5, atol=1e-5)


def test_the_metadata_names_the_input_the_version_and_the_architecture(trained):
    model = onnx_model(trained, pixels=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["architecture"]) == trained.config()
    assert meta["array-api-mlp"] == mlp.__version__ == model.producer_version
    assert meta["input"].startswith("x (N, 784) uint8 pixels 0..255, scaled by 1/255")
    assert meta["output"] == f"proba (N, 10) {trained.dtype_name} class probabilities"
    (x,) = model.graph.input
    dims = x.type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and dims[1].dim_value == 784
    assert x.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_dropout_is_absent_at_inference(trained):
    ops = {node.op_type for node in onnx_model(trained).graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomUniformLike", "Bernoulli"}


class RowNorm(Layer):
    """Rows scaled to unit length: uses ``linalg``, an extension ndonnx does not have."""

    def forward(self, x, train=False):
        xp = array_namespace(x)
        return x / xp.linalg.vector_norm(x, axis=1, keepdims=True)


def test_a_layer_ndonnx_cannot_run_is_named():
    network = mlp.MLP([784, 16, 10])
    network.layers.layers.insert(1, RowNorm())
    with pytest.raises(ExportError, match=r"layer 1 \(RowNorm\) cannot run on ndonnx"):
        onnx_model(network)


def test_bad_requests_are_refused():
    softmax = mlp.MLP([4, 3], output="softmax", loss=mlp.CrossEntropy())
    with pytest.raises(ExportError, match="ends in a softmax"):
        onnx_model(softmax, output="logits")
    with pytest.raises(ValueError, match="unknown output 'labels'"):
        onnx_model(softmax, output="labels")


def test_a_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    with pytest.raises(ExportError, match=r'ndonnx is missing.*pip install "\.\[onnx\]"'):
        onnx_model(mlp.MLP([4, 3]))


def test_the_file_is_never_clobbered_nor_left_half_written(tmp_path):
    network = mlp.MLP([4, 3])
    path = tmp_path / "m.onnx"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="exists"):
        to_onnx(network, path)
    assert path.read_bytes() == b"mine"
    to_onnx(network, path, overwrite=True)
    assert onnx.load(path).graph.input[0].name == "x"
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="not a regular file"):
        to_onnx(network, fifo, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.onnx", "m.onnx"]


def mlp_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlp", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_mlp_export_of_the_notebook_preset(tmp_path, mnist):
    trained = mlp_command("train", "--preset", "notebook", "--epochs", "1", "--save", "nb.st",
                          cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    done = mlp_command("export", "--checkpoint", "nb.st", "--onnx", "nb.onnx", "--pixels",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nb.onnx: " in done.stdout and "uint8 pixels" in done.stdout
    network = mlp.checkpoint.restore(tmp_path / "nb.st")
    assert network.output == "softmax" and network.dtype_name == "float64"
    got = runtime(onnx.load(tmp_path / "nb.onnx")).run(None, {"x": mnist.x_test})[0]
    expected = network.predict_proba(mnist.x_test)
    np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)

    again = mlp_command("export", "--checkpoint", "nb.st", "--onnx", "nb.onnx", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "mlp export: error: --onnx nb.onnx: the file exists; pass --overwrite to replace it "
        "(see mlp export --help)"]
    logits = mlp_command("export", "--checkpoint", "nb.st", "--onnx", "l.onnx", "--output",
                         "logits", cwd=tmp_path)
    assert logits.returncode == 1 and "ends in a softmax" in logits.stderr
    assert len(logits.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "l.onnx").exists()
    missing = mlp_command("export", "--checkpoint", "no.st", "--onnx", "x.onnx", cwd=tmp_path)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_export_help_says_what_the_model_takes_and_carries():
    text = subprocess.run([sys.executable, "-m", "mlp", "export", "--help"],
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for phrase in ("uint8 pixels 0..255", "pixels in [0, 1]", "metadata", "architecture",
                   '".[onnx]"', "--overwrite"):
        assert phrase in flat, phrase
