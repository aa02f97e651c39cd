"""The "reconstruction+code" anomaly score as a card carries it: fitted as an independent computation says, the default of
`train --data` for images with the ae family, and the score `score`, `evaluate` and `export` use."""

import csv
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_breast_cancer

import keras_ae
from keras_ae import anomaly, cli
from keras_ae.errors import InputError
from keras_ae.metrics import auroc


def run(capsys, *argv):
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def train_detector(capsys, digit_folder, out, *options):
    """`keras-ae train --data` on the digits with class_1 as normal; the card it writes."""
    code, _, err = run(capsys, "train", "--data", digit_folder, "--normal-label", "class_1", *options, "--output", out)
    assert code == 0, err
    return json.loads((out / "card.json").read_text())


def independent_code_score(model, normal, x, ridge=1e-3):
    """The score written out in numpy from its definition: log reconstruction error and log squared Mahalanobis
    distance of the code, each standardized on the normal examples, summed."""
    def terms(rows):
        codes = np.asarray(model.embed(rows), "float64").reshape(len(rows), -1)
        offsets = codes - mean
        return np.log(np.asarray(model.anomaly_score(rows), "float64") + 1e-12), np.log(np.sum(offsets @ precision * offsets, axis=1) + 1e-12)

    normal_codes = np.asarray(model.embed(normal), "float64").reshape(len(normal), -1)
    mean = normal_codes.mean(axis=0)
    covariance = np.cov(normal_codes, rowvar=False)
    precision = np.linalg.pinv(covariance + ridge * np.trace(covariance) / len(covariance) * np.eye(len(covariance)))
    reference = terms(normal)
    return sum((term - ref.mean()) / (ref.std() + 1e-12) for term, ref in zip(terms(x), reference))


def test_the_code_score_is_its_definition_and_survives_a_card_s_json():
    features, labels = load_breast_cancer(return_X_y=True)
    features = features.astype("float32")
    normal = features[labels == 1][:200]
    model = anomaly.Detector(epochs=5, seed=0).fit(normal).model_
    fitted = anomaly.CodeScore.fit(model, normal)
    expected = independent_code_score(model, normal, features)
    np.testing.assert_allclose(np.asarray(fitted(model, features)), expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(anomaly.fit_scorer(model, normal, "reconstruction+code")(features), expected, rtol=1e-7, atol=1e-9)
    carried = anomaly.CodeScore.from_json(json.loads(json.dumps(fitted.to_json())))
    assert carried == fitted and len(fitted.code_mean) == 8 and len(fitted.code_precision) == 8
    broken = {**fitted.to_json(), "code_precision": fitted.to_json()["code_precision"][:-1]}
    for mapping in (broken, {"code_mean": [0.0]}):
        with pytest.raises(InputError) as refused:
            anomaly.CodeScore.from_json(mapping, source="card.json anomaly.code_score")
        message = str(refused.value)
        assert "\n" not in message and message.startswith("card.json anomaly.code_score must hold code_mean (n values)"), message


def test_an_image_detector_scores_with_its_fitted_code_score_in_score_evaluate_and_export(digit_folder, tmp_path, capsys):
    out = tmp_path / "ones"
    card = train_detector(capsys, digit_folder, out, "--epochs", "5", "--batch-size", "16")
    settings = card["anomaly"]
    assert settings["score"] == "reconstruction+code" and set(settings["code_score"]) == {"code_mean", "code_precision", "centers", "spreads"}
    model = keras_ae.load(out)
    fitted = anomaly.CodeScore.from_json(settings["code_score"])
    assert len(fitted.code_mean) == 32  # the images' default code
    typed = keras_ae.cards.as_card(card)
    training = keras_ae.kinds.of(keras_ae.cards.task_of(typed)).arrays(typed, "train", every_label=False)[0]
    assert 20 < len(training) < 30  # class_1 alone (30 digits), less those in the seeded held-out tenth
    np.testing.assert_allclose(settings["threshold"], np.percentile(independent_code_score(model, training, training), 99), rtol=1e-6)

    code, _, err = run(capsys, "score", out, digit_folder, "--out", tmp_path / "scores.csv")
    assert code == 0, err
    with open(tmp_path / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    images = np.stack([np.asarray(Image.open(digit_folder / row["input"]), "float32")[..., None] / 255.0 for row in rows])
    scores = np.array([float(row["score"]) for row in rows])
    np.testing.assert_allclose(scores, independent_code_score(model, training, images), rtol=1e-5, atol=1e-5)
    assert [row["is_anomaly"] == "1" for row in rows] == list(scores > settings["threshold"])

    python_scores = anomaly.preset_scores(model, keras_ae.model_card(out)["anomaly"], images)
    np.testing.assert_allclose(python_scores, scores, rtol=1e-6, atol=1e-6)

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    card_file = tampered / "card.json"
    changed = json.loads(card_file.read_text())
    changed["anomaly"]["code_score"]["code_mean"] = changed["anomaly"]["code_score"]["code_mean"][:8]
    changed["anomaly"]["code_score"]["code_precision"] = [row[:8] for row in changed["anomaly"]["code_score"]["code_precision"][:8]]
    card_file.write_text(json.dumps(changed))
    code, _, err = run(capsys, "score", tampered, digit_folder, "--out", tmp_path / "tampered.csv")
    assert code == 2 and err.count("\n") == 1 and "fitted to codes of 8 values; this model's codes have 32" in err, err
    assert not (tmp_path / "tampered.csv").exists()

    code, printed, err = run(capsys, "evaluate", out)
    assert code == 0, err
    held_out, held_out_labels = keras_ae.kinds.of(keras_ae.cards.task_of(typed)).arrays(typed, "validation")
    expected_auroc = auroc(independent_code_score(model, training, held_out), held_out_labels != 1)
    assert abs(float(printed.split("auroc: ")[1].split()[0]) - expected_auroc) < 1e-9, printed

    assert run(capsys, "export", out, tmp_path / "served")[0] == 0
    served = tf.saved_model.load(str(tmp_path / "served"))
    exported = np.asarray(served.signatures["anomaly_score"](x=tf.constant(images[:20]))["output_0"])
    np.testing.assert_allclose(exported, scores[:20], rtol=1e-5, atol=1e-5)


def test_the_reconstruction_score_is_kept_where_asked_and_a_code_score_is_refused_where_it_has_no_meaning(digit_folder, tmp_path, capsys):
    out = tmp_path / "plain"
    card = train_detector(capsys, digit_folder, out, "--score", "reconstruction", "--epochs", "1")
    assert "score" not in card["anomaly"] and "code_score" not in card["anomaly"]  # the default for everything but images' ae
    refusals = {
        ("--family", "vae", "--score", "reconstruction+code", "--normal-label", "class_1"): "VAE's anomaly score is not one",
        ("--score", "reconstruction+code"): "without --normal-label nothing is scored",
    }
    for options, complaint in refusals.items():
        code, _, err = run(capsys, "train", "--data", digit_folder, *options, "--epochs", "1", "--output", tmp_path / "refused")
        assert code == 2 and err.count("\n") == 1 and complaint in err, err
    with pytest.raises(SystemExit) as refused:
        cli.main(["train", "--data", str(digit_folder), "--normal-label", "class_1", "--score", "code", "--output", str(tmp_path / "refused")])
    assert refused.value.code == 2 and "invalid choice: 'code'" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
