"""keras_ae.train under tf.distribute: two workers on loopback, and mirrored replicas on two logical CPUs; each replica's
own noise, and a VQ-VAE codebook that moves as on one device."""

import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import networks

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras_ae
    model, history, stats = keras_ae.train(
        keras_ae.model_card("ae_mnist"), strategy=sys.argv[1], epochs=2, batch_size=128,
        train_split="train[:4096]", validation_split="test[:1024]", verbose=0,
    )
    np.savez(sys.argv[2], *[weight.numpy() for weight in model.weights])
    print(json.dumps({"loss": history.history["loss"], "val_loss": history.history["val_loss"], "replicas": stats["replicas"]}))
""")


SGD_WORKER = textwrap.dedent("""
    import importlib, sys
    import keras, numpy as np
    import keras_ae
    from keras_ae import cards, data
    training = importlib.import_module("keras_ae.training")
    strategy = training.resolve_strategy(sys.argv[1])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = cards.build_model(keras_ae.model_card("ae_mnist"))
        model.compile(optimizer=keras.optimizers.SGD(5.0))
    initial = [weight.numpy() for weight in model.weights]
    options = dict(split="train[:256]", shuffle=False)  # two global batches of 128, the same examples either way
    if strategy.num_replicas_in_sync > 1:
        dataset = data.distribute(strategy, "mnist", 128, **options)
        training.fit_distributed(model, strategy, dataset, dataset, steps=2, validation_steps=0, epochs=1, callbacks=[], verbose=0)
    else:
        model.fit(data.load("mnist", batch_size=128, **options), epochs=1, verbose=0)
    np.savez(sys.argv[2], *[weight.numpy() - start for weight, start in zip(model.weights, initial)])  # what the steps moved
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def test_two_workers_on_loopback_end_identical_and_match_one_process(tmp_path, data_root):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        environment = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, "auto", str(tmp_path / f"worker{index}.npz")],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    single = subprocess.run([sys.executable, "-c", WORKER, "one_device", str(tmp_path / "single.npz")],
                            capture_output=True, text=True, timeout=300)
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            process.kill()
    assert single.returncode == 0, single.stderr[-3000:]
    alone = json.loads(single.stdout.strip().splitlines()[-1])
    assert [result["replicas"] for result in results] == [2, 2] and alone["replicas"] == 1
    first, second = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert results[0]["loss"] == results[1]["loss"]
    np.testing.assert_allclose(results[0]["loss"], alone["loss"], rtol=0.03)
    np.testing.assert_allclose(results[0]["val_loss"], alone["val_loss"], rtol=0.03)


def test_train_with_a_mirrored_strategy_over_two_logical_cpus(data_root, mirrored_strategy):
    model, history, stats = keras_ae.train(
        keras_ae.model_card("conv_ae_mnist"), strategy=mirrored_strategy, epochs=1, batch_size=128,
        train_split="train[:2048]", validation_split="test[:512]", verbose=0,
    )
    assert stats["replicas"] == 2 and stats["strategy"] == "MirroredStrategy"
    assert np.isfinite(history.history["val_loss"][0])


SMALL_SHAPE = (8, 8, 1)
NOISY_FAMILIES = {
    "denoising": lambda: keras_ae.DenoisingAutoencoder(*networks.dense(SMALL_SHAPE, 4), noise="masking", seed=0),
    "vae": lambda: keras_ae.VAE(*networks.dense(SMALL_SHAPE, 4, variational=True), seed=0),
}


@pytest.mark.parametrize("family", sorted(NOISY_FAMILIES))
def test_each_replica_draws_its_own_noise(family, mirrored_strategy):
    """The same examples on both replicas: one shared seed would corrupt (or sample) them identically."""
    with mirrored_strategy.scope():
        model = NOISY_FAMILIES[family]()
    x = np.random.default_rng(0).random((4, *SMALL_SHAPE), dtype=np.float32)
    per_replica = tf.function(lambda: mirrored_strategy.run(lambda: model.loss_terms(x, training=True)["loss"]))()
    first, second = (np.asarray(losses) for losses in mirrored_strategy.experimental_local_results(per_replica))
    assert np.all(np.isfinite(first)) and not np.allclose(first, second)


def test_one_device_draws_as_a_plain_seed_generator():
    model = keras_ae.DenoisingAutoencoder(*networks.dense(SMALL_SHAPE, 4), noise="gaussian", noise_level=0.5, seed=0)
    x = np.random.default_rng(0).random((4, *SMALL_SHAPE), dtype=np.float32)
    noise = keras.random.normal(x.shape, stddev=0.5, seed=keras.random.SeedGenerator(0))
    np.testing.assert_array_equal(model.corrupt(x), np.clip(x + np.asarray(noise), 0.0, 1.0))


def test_vqvae_codebook_moves_on_two_replicas_as_on_one_device_given_the_global_batch(mirrored_strategy):
    """EMA statistics summed over replicas (averaging halves the counts); a dead code restarts at one encoder output,
    the same on both replicas."""
    def build():
        encoder, decoder = networks.dense(SMALL_SHAPE, 4, code_activation="linear", seed=0)
        return keras_ae.VQVAE(encoder, decoder, num_embeddings=16, ema_decay=0.5, seed=0)

    alone = build()
    with mirrored_strategy.scope():
        mirrored = build()
    mirrored.set_weights(alone.get_weights())
    x = np.random.default_rng(0).random((64, *SMALL_SHAPE), dtype=np.float32)
    vectors = np.asarray(alone.encoder(x))
    codebook, cluster_size = vectors[:16].copy(), np.full(16, 4.0, "float32")
    codebook[5], cluster_size[5] = 1e3, 0.0  # code 5: far from every encoder output, and unused: it restarts
    for model in (alone, mirrored):
        model.codebook.assign(codebook)
        model.ema_cluster_size.assign(cluster_size)
        model.ema_embedding_sum.assign(codebook * cluster_size[:, None])
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0)  # one step; 32 examples on each replica
    live = np.arange(16) != 5
    expected = {name: np.asarray(getattr(alone, name)) for name in ("codebook", "ema_cluster_size", "ema_embedding_sum")}
    assert np.abs(expected["ema_cluster_size"][live] - 2.0).max() > 1  # the batch's counts moved the sizes
    for name, want in expected.items():
        replicas = [np.asarray(value) for value in mirrored_strategy.experimental_local_results(getattr(mirrored, name).value)]
        np.testing.assert_array_equal(replicas[0], replicas[1])
        np.testing.assert_allclose(replicas[0][live], want[live], rtol=1e-5, atol=1e-5)
    restarted = np.asarray(mirrored.codebook)[5]
    assert np.min(np.abs(vectors - restarted).max(axis=1)) < 1e-5 and float(mirrored.ema_cluster_size[5]) == 1.0


def test_unknown_strategy_and_precision_list_the_choices():
    with pytest.raises(ValueError, match="'one_device', 'mirrored', 'multi_worker', 'tpu'"):
        keras_ae.train(keras_ae.model_card("ae_mnist"), strategy="horovod")
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        keras_ae.train(keras_ae.model_card("ae_mnist"), precision="float8")


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512_bf16"}, "mixed_bfloat16"), ({"amx_bf16"}, "mixed_bfloat16"),
                                             ({"avx2", "avx512f"}, "float32"), (set(), "float32")])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, flags, expected):
    train = importlib.import_module("keras_ae.training")  # the module; keras_ae.train is its function
    monkeypatch.setattr(train, "cpu_flags", lambda: flags)
    strategy = train.resolve_strategy("one_device")
    assert train.resolve_precision("auto", strategy) == expected
    assert train.resolve_precision("mixed_float16", strategy) == "mixed_float16"


def test_training_uses_the_recipe_precision_else_auto_and_the_card_records_it(monkeypatch):
    import keras

    monkeypatch.setattr(importlib.import_module("keras_ae.training"), "cpu_flags", lambda: {"avx512_bf16"})
    card = keras_ae.model_card("ae_mnist")
    card["recipe"]["precision"] = "float32"  # a recipe that names its precision
    options = dict(epochs=1, train_split="train[:256]", validation_split="test[:128]", verbose=0)
    model, _, stats = keras_ae.train(card, **options)
    assert stats["precision"] == "float32" and model.encoder.layers[-1].compute_dtype == "float32"
    del card["recipe"]["precision"]
    model, _, stats = keras_ae.train(card, **options)
    assert stats["precision"] == "mixed_bfloat16"
    computing = [layer for network in (model.encoder, model.decoder) for layer in network.layers if layer.trainable_weights]
    assert computing[-1].name == "decoder_output" and {layer.compute_dtype for layer in computing} == {"bfloat16"}
    assert model.decoder.layers[-1].name == "reconstruction" and model.decoder.layers[-1].compute_dtype == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the caller's global policy is left as it was
    assert keras.ops.convert_to_tensor(model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)).dtype == "float32"
    _, _, stats = keras_ae.train(card, precision="float32", **options)
    assert stats["precision"] == "float32"


def test_two_sgd_steps_on_two_workers_equal_one_process_on_the_same_global_batch(tmp_path, data_root):
    """Each worker's gradient is scaled for the global batch: a missing divide-by-replicas doubles the step."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = [subprocess.Popen(
        [sys.executable, "-c", SGD_WORKER, "auto", str(tmp_path / f"worker{index}.npz")],
        env={**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) for index in range(2)]
    single = subprocess.run([sys.executable, "-c", SGD_WORKER, "one_device", str(tmp_path / "single.npz")],
                            capture_output=True, text=True, timeout=300)
    try:
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in processes:
            process.kill()
    assert single.returncode == 0, single.stderr[-3000:]
    alone, worker = np.load(tmp_path / "single.npz"), np.load(tmp_path / "worker0.npz")
    for key in alone:
        np.testing.assert_allclose(worker[key], alone[key], atol=1e-5, rtol=0)
    largest = max(np.abs(alone[key]).max() for key in alone)
    assert largest > 1e-3, largest  # the two steps moved the weights 100 times the tolerance: equality is not trivial
