"""LiteRT and ONNX exports of every family, checked with their own runtimes against Keras (within 1e-4), through the
library and the command; a signature a converter cannot express is one line naming it."""

import numpy as np
import onnxruntime
import pytest
from ai_edge_litert.interpreter import Interpreter

import keras_ae
from keras_ae import cli, exporting
from keras_ae.errors import InputError
from keras_ae.models import task_for

ENTRIES = {  # one zoo entry per family (and per network kind where it differs)
    "ae_mnist": "mnist", "conv_ae_mnist": "mnist", "ae_ecg5000": "ecg5000", "dae_mnist": "mnist", "sae_mnist": "mnist",
    "vae2d_mnist": "mnist", "vqvae_mnist": "mnist", "cvae_mnist": "mnist",
}
TOLERANCE = 1e-4
REFUSED = {("vqvae_mnist", "litert"): "BitwiseAnd", ("vqvae_mnist", "onnx"): "Bitcast"}  # ops of the codebook lookup


def inputs_of(model, name, signature):
    """{input name: array} for a signature: the bundled sample's first 8 examples, their codes, or their labels."""
    examples, labels = keras_ae.data.bundled_sample(ENTRIES[name])
    examples = examples[:8].reshape((8, *model.input_shape_per_example))
    given = {"labels": labels[:8].astype("int32")} if "labels" in [spec.name for spec in signature] else {}
    code = np.asarray(model.embed(examples, **given))
    return {spec.name: {"x": examples, "z": code, "labels": labels[:8].astype("int32")}[spec.name] for spec in signature}


def reference(function, arrays):
    """{output name: array}: a signature's own names, or output_0 for a single tensor (as the converters name it)."""
    outputs = function(**arrays)
    return {name: np.asarray(value) for name, value in (outputs.items() if isinstance(outputs, dict) else [("output_0", outputs)])}


@pytest.mark.parametrize("name", ENTRIES)
def test_litert_and_onnx_give_the_keras_serve_and_encode_outputs(name, tmp_path):
    model = keras_ae.load(name)
    endpoints = task_for(model)(model).export_endpoints()
    for export_format in ("litert", "onnx"):
        if (name, export_format) in REFUSED:
            with pytest.raises(InputError) as refused:
                keras_ae.export(model, tmp_path / export_format, format=export_format, signatures=("serve", "encode"))
            message = str(refused.value)
            assert "\n" not in message and "cannot convert the serve signature" in message, message
            assert REFUSED[name, export_format] in message and not (tmp_path / export_format).exists()
            continue
        keras_ae.export(model, tmp_path / export_format, format=export_format, signatures=("serve", "encode"))
        for signature_name in ("serve", "encode"):
            function, signature = endpoints[signature_name]
            arrays = inputs_of(model, name, signature)
            expected = reference(function, arrays)
            if export_format == "litert":
                runner = Interpreter(str(tmp_path / export_format / f"{signature_name}.tflite")).get_signature_runner()
                got = runner(**arrays)
            else:
                session = onnxruntime.InferenceSession(str(tmp_path / export_format / f"{signature_name}.onnx"))
                values = session.run(None, {spec.name: arrays[spec.name.split(":")[0]] for spec in session.get_inputs()})
                names = [output.name.split(":")[0] for output in session.get_outputs()]
                got = dict(zip(names if set(names) == set(expected) else ["output_0"], values))
            assert set(got) == set(expected), (name, export_format, signature_name, set(got))
            for output, want in expected.items():
                np.testing.assert_allclose(got[output], want, atol=TOLERANCE, err_msg=f"{name} {export_format} {signature_name} {output}")


@pytest.mark.parametrize("export_format, op", [("litert", "StatelessRandom"), ("onnx", "Log1p")])
def test_a_signature_a_converter_cannot_express_is_one_line_naming_it_and_nothing_is_written(export_format, op, tmp_path):
    with pytest.raises(InputError) as refused:  # a VAE's anomaly score draws from a seeded normal
        keras_ae.export(keras_ae.load("vae2d_mnist"), tmp_path / "out", format=export_format)
    message = str(refused.value)
    assert "\n" not in message and "cannot convert the anomaly_score signature" in message and op in message, message
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_the_command_exports_each_format_and_refuses_an_unknown_one(tmp_path, capsys):
    assert cli.main(["export", "ae_mnist", str(tmp_path / "onnx"), "--format", "onnx"]) == 0
    assert {path.name for path in (tmp_path / "onnx").iterdir()} == {f"{name}.onnx" for name in exporting.CONVERTED_SIGNATURES}
    with pytest.raises(SystemExit) as refused:
        cli.main(["export", "ae_mnist", str(tmp_path / "other"), "--format", "coreml"])
    assert refused.value.code == 2 and "invalid choice: 'coreml'" in capsys.readouterr().err
    with pytest.raises(InputError, match="Unknown export format 'coreml'"):
        keras_ae.export(keras_ae.load("ae_mnist"), tmp_path / "library", format="coreml")
    assert not (tmp_path / "other").exists() and not (tmp_path / "library").exists()


def test_the_export_benchmark_times_every_format(tmp_path, monkeypatch):
    import export_benchmark

    monkeypatch.setattr(export_benchmark, "ENTRIES", {"ae_ecg5000": "ecg5000"})
    monkeypatch.setattr(export_benchmark, "ROUNDS", 1)
    monkeypatch.setattr(export_benchmark, "CALLS", 2)
    monkeypatch.setattr(export_benchmark, "RESULTS", tmp_path / "export.json")
    export_benchmark.main()
    results = __import__("json").loads((tmp_path / "export.json").read_text())["ae_ecg5000"]
    assert set(results) == {"savedmodel", "litert", "onnx"}
    assert all(value["bytes"] > 10_000 and 0 < value["batch_1_ms"] and 0 < value["batch_256_ms"] for value in results.values())
