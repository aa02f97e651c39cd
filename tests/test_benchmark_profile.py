"""scripts/benchmark.py's FLOP/s analysis: the profile reading of section 4b (exclusive op times from a TensorFlow
profiler trace, and which layer of vae_mnist each op belongs to), the per-layer FLOP count, section 4c's ceiling and
section 4d's layers timed alone."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from keras_ae import cards

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark  # noqa: E402

PS = 10**12  # picoseconds per second


def write_trace(folder, lines):
    """A profiler trace under `folder` with one host plane whose `lines` map a line name to (op name, start, duration) in
    seconds."""
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    ids = {}
    for line_name, events in lines.items():
        line = plane.lines.add(name=line_name)
        for name, start, duration in events:
            if name not in ids:
                ids[name] = len(ids) + 1
                plane.event_metadata[ids[name]].name = name
            line.events.add(metadata_id=ids[name], offset_ps=int(start * PS), duration_ps=int(duration * PS))
    path = Path(folder) / "plugins" / "profile" / "run" / "host.xplane.pb"
    path.parent.mkdir(parents=True)
    path.write_bytes(space.SerializeToString())


def test_op_seconds_are_exclusive_and_only_from_compute_threads(tmp_path):
    write_trace(tmp_path, {
        "tf_Compute/1": [("while/body:While", 0, 10), ("a/Conv2D:Conv2D", 1, 3), ("b:Mul", 5, 2), ("c:Mul", 5.5, 0.5),
                         ("d:Relu", 12, 1)],
        "tf_Compute/2": [("e:Relu", 0, 4)],
        "python": [("EagerExecute", 0, 20)],
    })
    seconds = benchmark.op_seconds_by_name(tmp_path)
    assert dict(seconds) == pytest.approx({"while/body:While": 5, "a/Conv2D:Conv2D": 3, "b:Mul": 1.5, "c:Mul": 0.5,
                                           "d:Relu": 1, "e:Relu": 4})


@pytest.mark.parametrize("op_name, part", [
    ("while/body/_1/StatefulPartitionedCall/gradient_tape/decoder_1/decoder_conv_transpose_1_1/conv_transpose/"
     "Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter", "decoder_conv_transpose_1"),
    ("while/StatefulPartitionedCall/encoder_1/encoder_conv_0_1/Relu:_MklNativeFusedConv2D", "encoder_conv_0"),
    ("while/StatefulPartitionedCall/decoder_1/decoder_output_1/Add:_MklNativeFusedConv2D", "decoder_output"),
    ("while/StatefulPartitionedCall/adam/Sub_43:Sub", "optimizer update (Adam)"),
    ("while/StatefulPartitionedCall/adam_7/Sqrt_9:Sqrt", "optimizer update (Adam)"),
    ("while/StatefulPartitionedCall/adamant/Sqrt_9:Sqrt", "loss, sampling, KL and the rest"),
    ("ExecutorState::Process", "executor overhead"),
    ("while/StatefulPartitionedCall/logistic_loss/Log1p:Log1p", "loss, sampling, KL and the rest"),
])
def test_ops_are_assigned_to_their_layer(op_name, part):
    layer_names = {"encoder_conv_0", "encoder_conv_1", "decoder_conv_transpose_0", "decoder_conv_transpose_1", "decoder_output"}
    assert benchmark.part_of(op_name, layer_names) == part


def test_vae_mnist_flops_by_layer():
    flops = benchmark.forward_flops_by_layer(cards.build_model(cards.model_card("vae_mnist")))
    assert flops["encoder_conv_0"] == 2 * 14 * 14 * 3 * 3 * 1 * 32  # each of 14x14 outputs gathers a 3x3x1 window, 32 times
    assert flops["decoder_conv_transpose_1"] == 2 * 14 * 14 * 3 * 3 * 64 * 32  # each of 14x14 inputs scatters a window
    assert flops["encoder_dense"] == 2 * 7 * 7 * 64 * 256
    assert sum(flops.values()) == 15_047_936  # the 15.0 MFLOP forward pass README's section 4 counts


def test_typical_seconds_leave_out_one_off_stalls():
    side = {"reached": {"epoch": 4, "seconds": 100.0},
            "curve": [{"epoch": 1, "seconds": 10.0}, {"epoch": 2, "seconds": 70.0}, {"epoch": 3, "seconds": 80.0},
                      {"epoch": 4, "seconds": 100.0}]}  # epochs of 10, 60 (a stall), 10 and 20 s
    assert benchmark.typical_seconds(side) == 4 * 15.0


def test_the_ceiling_divides_section_4s_fraction_by_the_layers_share_of_op_time():
    flops = {"runs": [{"precision": "float32", "batch_size": 512, "fraction_of_peak": 0.5},
                      {"precision": "float32", "batch_size": 128, "fraction_of_peak": 0.3}]}
    profile = {"runs": [{"precision": "float32", "parts": [
        {"part": "decoder_output", "share_of_op_time": 0.5, "gflop_per_second": 10.0},
        {"part": "encoder_dense", "share_of_op_time": 0.25, "gflop_per_second": 100.0},
        {"part": "optimizer update (Adam)", "share_of_op_time": 0.25, "gflop_per_second": None},
    ]}]}
    [ceiling] = benchmark.layers_ceiling(flops, profile)
    assert ceiling == {"precision": "float32", "fraction_of_peak": 0.3, "layers_share_of_op_time": 0.75,
                       "ceiling": pytest.approx(0.4)}


def test_a_layer_alone_computes_the_gradients_training_needs():
    model = cards.build_model(cards.model_card("vae_mnist"))
    encoder = {layer.name: layer for layer in model.encoder.layers}
    first = benchmark.layer_step(encoder["encoder_conv_0"], 4, reads_images=True)()
    assert [gradient.shape for gradient in first] == [(3, 3, 1, 32), (32,)]  # the images need no gradient
    inputs, kernel, bias = benchmark.layer_step(encoder["z_mean"], 4, reads_images=False)()
    assert (inputs.shape, kernel.shape) == ((4, 256), (256, 32))
    cotangent = tf.random.stateless_normal((4, 32), seed=(benchmark.SEED, 2))
    np.testing.assert_allclose(bias, np.sum(cotangent, axis=0), rtol=1e-6)  # z_mean is linear: its bias gets the sum


def test_section_4d_rates_each_layer_and_all_of_them_against_the_peak():
    settings = dataclasses.replace(benchmark.QUICK, timed_epochs=1, inference_repeats=1, matmul_size=256, matmul_repeats=1)
    alone = benchmark.layers_alone(settings)
    flops = benchmark.forward_flops_by_layer(cards.build_model(cards.model_card("vae_mnist")))
    assert [run["precision"] for run in alone["runs"]] == ["float32", "mixed_bfloat16"]
    for run in alone["runs"]:
        assert {layer["layer"] for layer in run["layers"]} == set(flops)
        peak = run["matmul_peak_flops_per_second"]
        for layer in run["layers"]:
            assert layer["gflop_per_second"] == pytest.approx(3 * flops[layer["layer"]] * 128 / layer["seconds_per_batch"] / 1e9)
            assert layer["fraction_of_peak"] == pytest.approx(layer["gflop_per_second"] * 1e9 / peak)
        seconds = sum(layer["seconds_per_batch"] for layer in run["layers"])
        assert run["all_layers_fraction_of_peak"] == pytest.approx(3 * sum(flops.values()) * 128 / seconds / peak)
