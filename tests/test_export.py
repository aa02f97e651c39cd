import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras
import keras_ae
from keras_ae import networks
from keras_ae.exporting import export

SHAPE = (28, 28, 1)
MODELS = {
    "autoencoder": lambda: keras_ae.Autoencoder(*networks.dense(SHAPE, 8)),
    "denoising": lambda: keras_ae.DenoisingAutoencoder(*networks.conv(SHAPE, 8, filters=(4, 8))),
    "sparse": lambda: keras_ae.SparseAutoencoder(*networks.dense(SHAPE, 8)),
    "vae": lambda: keras_ae.VAE(*networks.conv(SHAPE, 4, filters=(4, 8), variational=True)),
    # A code that is a 7x7x2 feature map, not a vector: the signatures take its shape from the decoder.
    "feature_map_vae": lambda: keras_ae.VAE(*networks.conv(SHAPE, 2, filters=(4, 8), variational=True, spatial_code=True)),
}

RELOAD_WITHOUT_KERAS_AE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2])
    outputs = {"serve": served.serve(x), "encode": served.encode(x), "anomaly_score": served.anomaly_score(x)}
    code = outputs["encode"]["z_mean"] if isinstance(outputs["encode"], dict) else outputs["encode"]
    outputs["decode"] = served.decode(code)
    if hasattr(served, "sample"):
        outputs["sample"] = served.sample(tf.constant(3), tf.constant(7))
        assert tuple(served.sample(tf.constant(0), tf.constant(7)).shape) == (0, 28, 28, 1)
        try:
            served.sample(tf.constant(10_001), tf.constant(7))
            raise AssertionError("an exported sample of 10,001 images was not refused")
        except tf.errors.InvalidArgumentError as error:
            assert "count must be at most 10000" in str(error)
    assert "keras_ae" not in sys.modules
    flat = {name: (value if not isinstance(value, dict) else value["z_mean"]).numpy().tolist() for name, value in outputs.items()}
    print(json.dumps(flat))
""")


@pytest.mark.parametrize("family", MODELS)
def test_saved_model_signatures_match_keras_in_a_process_without_keras_ae(family, tmp_path, mnist_images):
    model = MODELS[family]()
    x = mnist_images[:6]
    np.save(tmp_path / "x.npy", x)
    export(model, tmp_path / "served")
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_WITHOUT_KERAS_AE, str(tmp_path / "served"), str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=300, check=True,
    )
    served = {name: np.array(value) for name, value in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    code = model.embed(x)
    np.testing.assert_allclose(served["serve"], model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(served["encode"], code, atol=1e-5)
    np.testing.assert_allclose(served["decode"], model.decode(code), atol=1e-5)
    np.testing.assert_allclose(served["anomaly_score"], model.anomaly_score(x), atol=1e-5, rtol=1e-6)
    if "vae" in family:
        assert served["sample"].shape == (3, *SHAPE)
        assert 0.0 <= served["sample"].min() and served["sample"].max() <= 1.0


@pytest.mark.parametrize("family", MODELS)
def test_keras_own_export_works_on_a_model_fresh_from_a_keras_archive(family, tmp_path):
    import tensorflow as tf

    model = MODELS[family]()
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    reloaded.export(str(tmp_path / "keras_export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "keras_export"))
    x = np.random.default_rng(0).random((4, *SHAPE), dtype=np.float32)
    np.testing.assert_allclose(served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_export_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        export(MODELS["autoencoder"](), target)
    assert [path.name for path in target.iterdir()] == ["keep.txt"]


def test_failed_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    import pathlib

    def disk_full_write_out(self, path, *args, **kwargs):
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(path) / "saved_model.pb").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", disk_full_write_out)
    with pytest.raises(OSError, match="No space left"):
        export(MODELS["autoencoder"](), tmp_path / "served")
    assert list(tmp_path.iterdir()) == []
