"""A new ratings family is one module: an item-history autoencoder with a squared-error loss on its softmax, and its own
recommender task, defined here and nowhere else.

The model extends Mult-DAE (a new family may build on an existing one: it keeps the item ids, the input dropout and
`recommend`) and swaps the multinomial likelihood for the squared error between the softmax over items and the user's
history as shares (a Brier score). Its task takes the "ratings" data kind. It trains on the real MovieLens
ml-latest-small through `keras_ae.train` from a card, is finished into a preset, loaded back, measured by
`keras_ae.evaluate`, exported with a `recommend` signature, and driven by the `keras-ae` command, without any file of
the package knowing it exists.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_ae
from keras_ae import cards, cli, evaluate, metrics
from keras_ae.models import per_batch
from keras_ae.models.task import RecommenderTask, metric_text

ITEMS = 6596  # items with a positive rating among ml-latest-small's training users (split seed 0)


# --- The family: the Keras model, and beside it its task ----------------------------------------------------------------
def softmax_squared_error(x, logits):
    """Per user: sum over items of (softmax(logits)_i - x_i / sum(x))^2, the Brier score of the predicted choice."""
    x = ops.cast(x, "float32")
    shares = x / ops.maximum(ops.sum(x, axis=-1, keepdims=True), 1.0)
    return ops.sum(ops.square(ops.softmax(ops.cast(logits, "float32"), axis=-1) - shares), axis=-1)


@keras.saving.register_keras_serializable(package="proof_example")
class SoftmaxSquaredDAE(keras_ae.MultDAE):
    """Mult-DAE's network, input dropout and `recommend`, trained on the squared error of its softmax instead of the
    multinomial likelihood."""

    def loss_terms(self, x, training, y=None):
        """The squared error of the history (or, given them, of the held-out items `y`) as shares."""
        logits = self.decoder(self.encoder(self.training_history(x, training), training=training), training=training)
        error = softmax_squared_error(x if y is None else y, logits)
        return {"loss": error, "reconstruction_loss": error}

    def anomaly_score(self, x):
        return softmax_squared_error(x, self(self.check_input(x)))


class SoftmaxSquaredTask(RecommenderTask):
    """Its own squared error, and Liang et al.'s NDCG@100 and Recall@20 of ranking the held-out items."""

    family = SoftmaxSquaredDAE

    def measure(self, examples, inputs, targets=None):
        model = self.model
        scores = np.asarray(per_batch(lambda batch: model(model.check_input(batch)), inputs, batch_size=500))
        measured = {"softmax_squared_error": float(np.mean(softmax_squared_error(inputs, scores)))}
        if targets is not None:
            scores = scores.astype("float64")
            measured["ndcg@100"] = float(metrics.ndcg_at_k(scores, targets, 100, exclude=inputs).mean())
            measured["recall@20"] = float(metrics.recall_at_k(scores, targets, 20, exclude=inputs).mean())
        return measured

    @classmethod
    def headline(cls, measured):
        if "ndcg@100" not in measured:
            return super().headline(measured)
        return f"NDCG@100 {measured['ndcg@100']:.3f}, Recall@20 {measured['recall@20']:.3f} (softmax squared error)"

    @classmethod
    def card_columns(cls):
        return {"NDCG@100": lambda measured: metric_text(measured, "ndcg@100", 3)}


# --- Its card: data, not code (the data section as the zoo's multvae_ml_latest_small card has it) --------------------------
CARD = {
    "name": "softmax_dae_ml_latest_small",
    "description": "Item-history autoencoder, 6596 items -> 64 (tanh) -> 6596 logits, squared error of the softmax; "
                   "implicit MovieLens ml-latest-small, Liang et al.'s strong-generalization split (seed 0).",
    "model": {"class_name": "proof_example>SoftmaxSquaredDAE", "config": {"input_dropout": 0.5, "seed": 0}},
    "network": {"kind": "dense", "input_shape": [ITEMS], "latent_dim": 64, "hidden_units": [], "activation": "tanh",
                "output_activation": "linear"},
    "data": {
        "dataset": "ml-latest-small", "heldout_users": 0.2, "split_seed": 0,
        "heldout_hash": "1fa3588a9f25ac02ea2f751e4a867ebd80f17f6c557b65d9dfca200201e7d4af",
        "train_split": "train", "test_split": "test", "ratings": "implicit", "monitor_split": "validation",
    },
    "recipe": {"epochs": 15, "batch_size": 100, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.02}}, "seed": 0},
    "weights": {"file": "model.weights.h5"},
}


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """The family trained from its card through keras_ae.train, and finished into a preset folder."""
    from keras_ae.training import finish

    folder = tmp_path_factory.mktemp("softmax_dae") / "softmax_dae_ml_latest_small"
    model, history, stats = keras_ae.train(CARD, precision="float32", verbose=0)
    finish(model, CARD, history, stats, folder)
    return model, history, folder


@pytest.fixture(scope="module")
def split(data_root):
    return keras_ae.ratings.card_split(CARD["data"])


def test_it_trains_on_ratings_and_keeps_the_datasets_item_ids(trained, split):
    model, history, _ = trained
    assert {"loss", "reconstruction_loss", "val_loss"} <= set(history.history)
    assert history.history["loss"][-1] < 0.95 * history.history["loss"][0]
    assert cards.task_of(CARD) is SoftmaxSquaredTask and keras_ae.kinds.of(SoftmaxSquaredTask) is keras_ae.kinds.KINDS["ratings"]
    np.testing.assert_array_equal(model.item_ids.numpy(), split.item_ids)


def test_it_is_measured_by_ranking_the_held_out_items(trained):
    model, _, _ = trained
    measured = evaluate.measure(CARD, model, limit=200)
    assert measured["test_examples"] == 61 and {"softmax_squared_error", "ndcg@100", "recall@20"} <= set(measured)
    untrained = evaluate.measure(CARD, cards.build_model(CARD, seed=0), limit=200)
    assert measured["ndcg@100"] > 0.2 and measured["ndcg@100"] > 5 * untrained["ndcg@100"], (measured, untrained)
    assert SoftmaxSquaredTask.card_columns()["NDCG@100"](measured) == f"{measured['ndcg@100']:.3f}"


def test_its_preset_loads_back_and_exports_a_recommend_signature(trained, split, tmp_path):
    model, _, folder = trained
    loaded = keras_ae.load(str(folder))
    assert type(loaded) is SoftmaxSquaredDAE
    np.testing.assert_array_equal(loaded.item_ids.numpy(), split.item_ids)
    histories = split.test_fold_in[:4].toarray().astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(histories)), np.asarray(model(histories)))
    keras_ae.export(loaded, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    recommended = served.signatures["recommend"](x=tf.constant(histories), k=tf.constant(10))  # as a serving client names them
    item_ids, scores = loaded.recommend(histories, k=10)
    np.testing.assert_array_equal(recommended["item_ids"].numpy(), item_ids)
    np.testing.assert_allclose(recommended["scores"].numpy(), scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served.serve(histories), loaded(histories), atol=1e-5)
    np.testing.assert_array_equal(served.recommend(histories, tf.constant(3))["item_ids"].numpy(), item_ids[:, :3])


def test_the_command_knows_it(trained, capsys):
    _, _, folder = trained
    assert cli.main(["info", str(folder)]) == 0
    assert "proof_example>SoftmaxSquaredDAE" in capsys.readouterr().out
    assert cli.main(["evaluate", str(folder), "--limit", "200"]) == 0
    printed = capsys.readouterr().out
    assert "test_examples: 61" in printed and "ndcg@100" in printed and "softmax_squared_error" in printed
    assert cli.main(["recommend", str(folder), "--items", "1,260,1196", "-k", "5"]) == 0  # Toy Story, Star Wars IV and V
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(".")[0].strip() for line in lines[-5:]] == ["1", "2", "3", "4", "5"]
    assert not {int(line.split()[1]) for line in lines[-5:]} & {1, 260, 1196}
    assert cli.main(["reconstruct", str(folder), "x.npy"]) == 2 and "does not support `keras-ae reconstruct`" in capsys.readouterr().err
    assert set(SoftmaxSquaredTask.commands()) == {"info", "evaluate", "export", "recommend"}
