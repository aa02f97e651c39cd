import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_ae import cards, cli, weights
from conftest import console_script
from http_server import serve

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def keras_ae_command(*argv, environment=None):
    """The installed console script, in an environment without the tests' TF_CPP_MIN_LOG_LEVEL."""
    environment = environment or {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([console_script(), *argv], capture_output=True, text=True, timeout=300, env=environment)


def test_console_script_help_and_one_line_errors():
    for argv in (["--help"], ["train", "--help"], ["download", "--help"], ["gallery", "--help"]):
        assert keras_ae_command(*argv).returncode == 0
    result = keras_ae_command("info", "no_such_model")
    assert result.returncode == 2
    assert result.stderr.startswith("keras-ae info: error: Unknown model source 'no_such_model'")
    assert result.stderr.count("\n") == 1, result.stderr


TENSORFLOW_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] ", re.MULTILINE)  # TensorFlow's C++ logging


def test_the_command_prints_no_tensorflow_log_lines_unless_asked(tmp_path):
    quiet = keras_ae_command("export", "ae_mnist", str(tmp_path / "quiet"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.strip() == f"wrote {tmp_path / 'quiet'}"
    verbose = keras_ae_command("--verbose", "export", "ae_mnist", str(tmp_path / "verbose"))
    assert verbose.returncode == 0 and TENSORFLOW_LOG_LINE.search(verbose.stderr), verbose.stderr
    own_level = keras_ae_command("export", "ae_mnist", str(tmp_path / "own"), environment={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert own_level.returncode == 0 and TENSORFLOW_LOG_LINE.search(own_level.stderr), own_level.stderr


def test_list_and_info(capsys):
    code, out, _ = run(capsys, "list", "vae*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["vae2d_mnist", "vae_fashion_mnist", "vae_mnist"]
    code, out, _ = run(capsys, "info", "vae_mnist")
    assert code == 0 and "[metrics]" in out and "iwae_nll_nats" in out


def test_demo_writes_pictures_and_prints_every_model(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 0
    for name in cards.list_models():
        assert any(line.startswith(name) for line in out.splitlines()), name
        if cards.model_card(name)["data"]["dataset"] == "ml-latest-small":  # research-use data: no bundled sample
            assert f"{name:<24} skipped: no bundled sample of ml-latest-small" in out
            continue
        assert (tmp_path / f"{name}_reconstructions.png").stat().st_size > 1000
    for picture in ("dae_mnist_denoising", "vae_mnist_samples", "vae2d_mnist_manifold", "vae2d_mnist_latent_scatter"):
        assert (tmp_path / f"{picture}.png").exists(), picture


def test_sample_reconstruct_export_evaluate(capsys, tmp_path, data_root):
    assert run(capsys, "sample", "vae_mnist", "-n", "8", "--out", str(tmp_path / "s.png"))[0] == 0
    assert (tmp_path / "s.png").exists()
    code, _, err = run(capsys, "sample", "ae_mnist", "--out", str(tmp_path / "no.png"))
    assert code == 2 and "ae_mnist (Autoencoder) does not support `keras-ae sample`" in err
    assert not (tmp_path / "no.png").exists()
    images, _ = __import__("keras_ae").data.bundled_sample("mnist")
    np.save(tmp_path / "digits.npy", (images[:4, ..., 0] * 255).astype("uint8"))
    assert run(capsys, "reconstruct", "conv_ae_mnist", str(tmp_path / "digits.npy"), "--out", str(tmp_path / "r.png"))[0] == 0
    from PIL import Image

    Image.fromarray((images[0, ..., 0] * 255).astype("uint8")).save(tmp_path / "digit.png")
    assert run(capsys, "reconstruct", "ae_mnist", str(tmp_path / "digit.png"), "--out", str(tmp_path / "r2.png"))[0] == 0
    code, _, err = run(capsys, "reconstruct", "ae_mnist", str(tmp_path / "digit.jpg"))
    assert code == 2 and ".png or .npy" in err
    assert run(capsys, "export", "ae_mnist", str(tmp_path / "served"))[0] == 0
    assert (tmp_path / "served" / "saved_model.pb").exists()
    code, out, _ = run(capsys, "evaluate", "ae_mnist", "--limit", "300")
    assert code == 0 and "psnr_db" in out and "test_examples: 300" in out


def test_train_from_a_card_file_writes_weights_card_and_tensorboard_logs(capsys, tmp_path, data_root):
    card = cards.model_card("ae_mnist")
    card["recipe"]["epochs"] = 1
    (tmp_path / "card.json").write_text(json.dumps(card))
    code, out, _ = run(
        capsys, "train", "--card", str(tmp_path / "card.json"), "--output", str(tmp_path / "out"),
        "--logdir", str(tmp_path / "logs"), "--batch-size", "512",
    )
    assert code == 0, out
    written = json.loads((tmp_path / "out" / "card.json").read_text())
    assert written["weights"]["sha256"] == weights.sha256(tmp_path / "out" / "model.weights.h5")
    assert written["training"]["epochs"] == 1 and "metrics" not in written  # the zoo's numbers measured other weights
    assert "command" not in written["training"]  # the library writes no script's command line into a card
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))
    trained = cards.load(str(tmp_path / "out"))
    zoo = cards.load("ae_mnist")
    x = __import__("keras_ae").data.bundled_sample("mnist")[0][:4]
    assert not np.allclose(trained.predict(x, verbose=0), zoo.predict(x, verbose=0))


def test_download_script_against_a_local_server(tmp_path):
    card = cards.model_card("ae_mnist")
    payload = (weights.ZOO_DIR / "ae_mnist" / card["weights"]["file"]).read_bytes()
    environment = {**os.environ, "KERAS_AE_HOME": str(tmp_path / "cache")}
    cached = tmp_path / "cache" / "ae_mnist" / card["weights"]["file"]

    def download(*argv):
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "download_weights.py"), *argv],
            env=environment, capture_output=True, text=True, timeout=300,
        )

    with serve(payload) as (url, _):
        for mode in ("truncated", "corrupt", "404"):
            result = download("ae_mnist", "--mirror", f"{url}/{mode}")
            assert result.returncode == 1 and "FAILED" in result.stdout, mode
            assert not cached.parent.exists() or list(cached.parent.iterdir()) == [], mode
        assert download("ae_mnist", "--verify").returncode == 1
        result = download("ae_mnist", "--mirror", f"{url}/good")
        assert result.returncode == 0, result.stdout + result.stderr
    assert cached.read_bytes() == payload
    result = download("--all", "--verify")
    assert "ae_mnist: OK" in result.stdout and "MISSING" in result.stdout and result.returncode == 1
    assert download("--all").returncode == 0
    assert download("--all", "--verify").returncode == 0


def test_a_conditional_model_reconstructs_and_scores_with_the_labels_given(capsys, tmp_path):
    from PIL import Image

    from keras_ae import data

    images, labels = data.bundled_sample("mnist")
    folder = tmp_path / "digits"
    for index, (image, label) in enumerate(zip(images[:6], labels[:6])):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[..., 0] * 255).astype("uint8")).save(folder / str(label) / f"{index}.png")
    code, out, err = run(capsys, "score", "cvae_mnist", str(folder), "--out", str(tmp_path / "by_folder.csv"))
    assert code == 0, err  # class subfolders give the labels
    rows = [line.split(",") for line in (tmp_path / "by_folder.csv").read_text().splitlines()[1:]]
    order = [int(Path(name).stem) for name, _ in rows]  # the folder's order, so each image meets the same seeded noise
    np.save(tmp_path / "six.npy", images[order])
    np.save(tmp_path / "labels.npy", labels[order].astype("int64"))
    code, out, err = run(capsys, "score", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", str(tmp_path / "labels.npy"),
                         "--out", str(tmp_path / "given.csv"))
    assert code == 0, err
    given = [float(line.split(",")[1]) for line in (tmp_path / "given.csv").read_text().splitlines()[1:]]
    assert given == pytest.approx([float(score) for _, score in rows], rel=1e-4)
    wrong = (labels[order] + 1) % 10
    code, _, err = run(capsys, "score", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", ",".join(map(str, wrong)),
                       "--out", str(tmp_path / "wrong.csv"))
    assert code == 0, err
    assert np.mean([float(line.split(",")[1]) for line in (tmp_path / "wrong.csv").read_text().splitlines()[1:]]) > np.mean(given)

    code, out, err = run(capsys, "reconstruct", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", "3", "--out", str(tmp_path / "r.png"))
    assert code == 0 and (tmp_path / "r.png").stat().st_size > 500, err
    code, out, err = run(capsys, "reconstruct", "cvae_mnist", str(folder), "--out", str(tmp_path / "out"))
    assert code == 0 and len(list((tmp_path / "out").rglob("*.png"))) == 6, err

    for argv, expected in (
        (["score", "cvae_mnist", str(tmp_path / "six.npy")], "conditioned on class labels: pass --labels"),
        (["score", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", "1,2"], "one integer class per input (6)"),
        (["score", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", "one"], "--labels must be a class"),
        (["reconstruct", "conv_ae_mnist", str(tmp_path / "six.npy"), "--labels", "3"], "takes none"),
        (["score", "cvae_mnist", str(tmp_path / "six.npy"), "--labels", "12"], "[0, 10)"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, (argv, err)
