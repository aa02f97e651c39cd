"""keras_ae.train under tf.distribute: two workers on loopback, and mirrored replicas on two logical CPUs."""

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
