"""The command line under a careless or hostile user, through the real `keras-ae` entry point: every bad count is one
line and exit status 2, huge counts are streamed or refused with the limit named, inputs of any bit depth read right."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae import data, kinds
from conftest import console_script


def keras_ae_command(*argv, cwd=None):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([console_script(), *argv], capture_output=True, text=True, timeout=300, env=environment, cwd=cwd)


def assert_one_line_refusal(result, *expected):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    for text in expected:
        assert text in lines[0], (text, lines[0])


@pytest.mark.parametrize("argv, named", [
    (["sample", "vae_mnist", "-n", "-3"], "argument -n: expected an integer >= 1; got '-3'"),
    (["sample", "vae_mnist", "--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["train", "ae_mnist", "--epochs", "0"], "argument --epochs: expected an integer >= 1; got '0'"),
    (["train", "ae_mnist", "--epochs", "-2"], "argument --epochs"),
    (["train", "ae_mnist", "--batch-size", "0"], "argument --batch-size"),
    (["train", "ae_mnist", "--batch-size", "-1"], "argument --batch-size"),
    (["train", "--data", "x.npy", "--latent-dim", "0"], "argument --latent-dim: expected an integer from 1 to 65,536"),
    (["train", "--data", "x.npy", "--threshold-percentile", "120"], "argument --threshold-percentile: expected a percentile"),
    (["evaluate", "ae_mnist", "--limit", "0"], "argument --limit: expected an integer >= 1; got '0'"),
    (["evaluate", "ae_mnist", "--limit", "-5"], "argument --limit"),
    (["evaluate", "ae_mnist", "--limit", "ten"], "got 'ten'"),
    (["recommend", "multvae_ml_latest_small", "--items", "1", "-k", "0"], "argument -k"),
])
def test_every_count_is_validated_in_one_line(argv, named):
    assert_one_line_refusal(keras_ae_command(*argv), named)


def test_limit_is_validated_in_the_library_too():
    assert kinds.first_of("test", None) == "test" and kinds.first_of("test[100:]", 50) == "test[100:150]"
    for limit in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="limit must be a positive number of examples"):
            kinds.first_of("test", limit)


def test_huge_sample_counts_stream_to_a_npy_file_or_are_refused_with_the_limit(tmp_path):
    assert_one_line_refusal(keras_ae_command("sample", "vae_mnist", "-n", "100000", "--out", str(tmp_path / "s.png")),
                            "at most 1,000", "--out samples.npy")
    assert_one_line_refusal(keras_ae_command("sample", "vae_mnist", "-n", "2000000", "--out", str(tmp_path / "s.npy")),
                            "1,000,000")
    result = keras_ae_command("sample", "vae_mnist", "-n", "2500", "--seed", "7", "--out", str(tmp_path / "s.npy"))
    assert result.returncode == 0, result.stderr
    drawn = np.load(tmp_path / "s.npy")
    assert drawn.shape == (2500, 28, 28, 1) and drawn.dtype == np.float32 and 0.0 <= drawn.min() <= drawn.max() <= 1.0
    assert len({drawn[index].tobytes() for index in range(0, 2500, 250)}) == 10  # batches are not repeats of each other
    assert not list(tmp_path.glob(".partial-*"))
    result = keras_ae_command("sample", "vae_mnist", "-n", "4", "--out", "no_suffix", cwd=tmp_path)
    assert result.returncode == 0 and "wrote no_suffix.png" in result.stdout and (tmp_path / "no_suffix.png").stat().st_size > 500


def test_reconstruct_reads_16_bit_pngs_and_integer_arrays_by_their_depth(tmp_path):
    images, _ = data.bundled_sample("mnist")
    eight = np.round(images[:3] * 255).astype("uint8")
    Image.fromarray((eight[0, ..., 0].astype("uint16") * 257)).save(tmp_path / "deep.png")  # 16-bit, same picture
    Image.fromarray(eight[0, ..., 0]).save(tmp_path / "plain.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.save(tmp_path / "uint8.npy", eight)
    outputs = {}
    for name in ("deep.png", "plain.png", "uint8.npy"):
        result = keras_ae_command("reconstruct", "conv_ae_mnist", str(tmp_path / name), "--out", str(tmp_path / f"{name}.out.npy"))
        assert result.returncode == 0, result.stderr
        outputs[name] = np.load(tmp_path / f"{name}.out.npy")
    expected = np.asarray(keras_ae.load("conv_ae_mnist")(eight.astype("float32") / 255.0))
    np.testing.assert_allclose(outputs["uint8.npy"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["deep.png"], outputs["plain.png"], atol=1e-4)  # not saturated to 1.0
    np.testing.assert_allclose(outputs["plain.png"][0], expected[0], atol=1e-5)
    for dtype in ("int32", "int64", "uint16"):  # not scaled by a guess: refused, saying how to convert
        np.save(tmp_path / f"{dtype}.npy", eight.astype(dtype))
        assert_one_line_refusal(keras_ae_command("reconstruct", "conv_ae_mnist", str(tmp_path / f"{dtype}.npy")),
                                f"{dtype}.npy holds {dtype} values", "uint8 for 0-255 pixels")
    bad = images[:3].copy()
    bad[1, 3, 4, 0] = np.nan
    np.save(tmp_path / "holes.npy", bad)
    assert_one_line_refusal(keras_ae_command("reconstruct", "conv_ae_mnist", str(tmp_path / "holes.npy")),
                            "holds nan at index (1, 3, 4, 0)")
    np.save(tmp_path / "many.npy", np.zeros((1001, 28, 28, 1), "float32"))
    assert_one_line_refusal(keras_ae_command("reconstruct", "conv_ae_mnist", str(tmp_path / "many.npy")),
                            "1,001 images", "--out reconstructions.npy")


def test_no_codes_decode_to_no_images_of_the_right_shape_and_samples_decode_in_batches():
    vae = keras_ae.load("vae_mnist")
    assert np.shape(vae.decode(np.zeros((0, 32), "float32"))) == (0, 28, 28, 1) == np.shape(vae.sample(0))
    assert np.shape(keras_ae.load("cvae_mnist").sample(0)) == (0, 28, 28, 1)
    assert np.shape(keras_ae.load("vqvae_mnist").decompress(np.zeros((0, 7, 7), "int32"))) == (0, 28, 28, 1)
    import keras

    whole = np.asarray(vae.decode(keras.random.normal((2100, 32), seed=3)))
    np.testing.assert_array_equal(np.asarray(vae.sample(2100, seed=3)), whole)  # three batches, the same draws


def test_a_batch_refused_inside_the_compiled_graph_gives_the_models_own_one_line_error():
    from keras_ae import cli

    model, images = keras_ae.load("conv_ae_mnist"), np.zeros((4, 28, 28, 1), "float32")
    clean = list(cli._each_batch(model.anomaly_score, [images, images[:2]], None))
    assert [len(scores) for scores in clean] == [4, 2]
    np.testing.assert_allclose(clean[0], np.asarray(model.anomaly_score(images)), rtol=1e-5)
    holed = images.copy()
    holed[1, 2, 3, 0] = np.nan  # the readers refuse it first; the model's graph check is the last line of defence
    with pytest.raises(ValueError, match="Autoencoder got NaN or Inf in its inputs"):
        list(cli._each_batch(model.anomaly_score, [images, holed], None))
    cvae, labels = keras_ae.load("cvae_mnist"), np.array([1, 2, 3, 12])
    with pytest.raises(ValueError, match=r"label outside \[0, 10\)"):
        list(cli._each_batch(cvae.anomaly_score, [images], labels))


def test_errors_reach_the_terminal_on_one_line_without_colour_codes(tmp_path):
    from keras_ae import cli

    wrapped = ValueError("Exception encountered when calling Autoencoder.call().\n\n\x1b[1mAutoencoder got NaN or Inf in its "
                         "inputs; clean the data first.\x1b[0m\n\nArguments received by Autoencoder.call():\n  • x=tf.Tensor(...)")
    assert cli._one_line(wrapped) == "Autoencoder got NaN or Inf in its inputs; clean the data first."
    assert cli._one_line(ValueError("first\n  second")) == "first second"
    card = json.loads((keras_ae.cards.card_path("ae_mnist")).read_text())
    del card["recipe"]
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert_one_line_refusal(keras_ae_command("train", "--card", str(tmp_path / "card.json"), "--output", str(tmp_path / "out")),
                            "has no recipe section")
    assert not (tmp_path / "out").exists()


def test_list_and_info_answer_without_importing_tensorflow(tmp_path):
    listed = keras_ae_command("list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(keras_ae.list_models())
    headline = keras_ae.model_card("vae_mnist", complete=False).get("metrics", {}).get("headline", "not measured")
    assert f"vae_mnist                VAE                    mnist          {headline}" in listed.stdout
    shown = keras_ae_command("info", "vae_mnist")
    assert shown.returncode == 0 and "[network]" in shown.stdout and "latent_dim: 32" in shown.stdout
    probe = ("import sys; from keras_ae import cli; assert cli.main(['list']) == 0 and cli.main(['info', 'cvae_mnist']) == 0; "
             "heavy = sorted(name for name in ('tensorflow', 'keras', 'scipy') if name in sys.modules); "
             "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_one_line_refusal(keras_ae_command("info", "VAE_MNIST"), "zoo names are lowercase; this one is 'vae_mnist'")
    card = json.loads(keras_ae.cards.card_path("ae_mnist").read_text())
    card["weights"] = "model.weights.h5"
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert_one_line_refusal(keras_ae_command("info", str(tmp_path)), "card.json: weights must be an object")
