"""keras_ae.train under tf.distribute: two workers on loopback, and mirrored replicas on two logical CPUs."""

import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_ae

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
    training = importlib.import_module("keras_ae.train")
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


def test_unknown_strategy_and_precision_list_the_choices():
    with pytest.raises(ValueError, match="'one_device', 'mirrored', 'multi_worker', 'tpu'"):
        keras_ae.train(keras_ae.model_card("ae_mnist"), strategy="horovod")
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        keras_ae.train(keras_ae.model_card("ae_mnist"), precision="float8")


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512_bf16"}, "mixed_bfloat16"), ({"amx_bf16"}, "mixed_bfloat16"),
                                             ({"avx2", "avx512f"}, "float32"), (set(), "float32")])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, flags, expected):
    train = importlib.import_module("keras_ae.train")  # the module; keras_ae.train is its function
    monkeypatch.setattr(train, "cpu_flags", lambda: flags)
    strategy = train.resolve_strategy("one_device")
    assert train.resolve_precision("auto", strategy) == expected
    assert train.resolve_precision("mixed_float16", strategy) == "mixed_float16"


def test_training_uses_the_recipe_precision_else_auto_and_the_card_records_it(monkeypatch):
    import keras

    monkeypatch.setattr(importlib.import_module("keras_ae.train"), "cpu_flags", lambda: {"avx512_bf16"})
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
