"""Export a model for serving without keras_ae: a TensorFlow SavedModel with the named signatures its family's task
declares, or those signatures converted to LiteRT (TensorFlow Lite) or ONNX.

    keras_ae.export(model, "served")                        # SavedModel: serve, encode, decode, anomaly_score, ...
    keras_ae.export(model, "served_lite", format="litert")  # served_lite/serve.tflite, encode.tflite, ...
    keras_ae.export(model, "served_onnx", format="onnx")    # served_onnx/serve.onnx, encode.onnx, ...
"""

import re
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from keras_ae.anomaly import preset_score
from keras_ae.errors import InputError, MissingExtraError
from keras_ae.models import task_for

FORMATS = ("savedmodel", "litert", "onnx")
CONVERTED_SIGNATURES = ("serve", "encode", "decode", "anomaly_score")  # what LiteRT and ONNX get: no random draws
ONNX_OPSET = 17


def _check_destination(path):
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"Export path {path} exists and is not an empty directory; choose a new path or remove it.")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return path


def export(model, path, format="savedmodel", signatures=None, anomaly=None):
    """Write `model` for serving, whole or not at all.

    Args:
        model: a keras_ae model.
        path: a new (or empty) folder.
        format: `"savedmodel"`: a SavedModel with every signature of the family task's `export_endpoints()` (every
            family has `serve` (reconstruction), `encode`, `decode` and `anomaly_score` over float32 `[None, *input_shape]`
            inputs and `[None, *code_shape]` codes; a VAE adds `sample(count, seed)`). `"litert"`: one `<signature>.tflite`
            per deterministic signature (TensorFlow's converter; run it with `ai_edge_litert`'s `Interpreter`).
            `"onnx"`: one `<signature>.onnx` per deterministic signature (`tf2onnx`, opset 17; run with `onnxruntime`).
        signatures: the names to write (default: every one the format takes); e.g. `("serve", "encode")` where a
            converter cannot express a VAE's `anomaly_score` (it draws from a seeded normal).
        anomaly: a card's `anomaly` section (`keras-ae export` passes the preset's): `anomaly_score` then scores as
            the card does (`keras_ae.anomaly.preset_score`), so the card's threshold applies to it.

    Raises:
        InputError: an unknown format, signatures the family does not offer in that format (or none), or a signature
            the converter cannot express (naming the signature and the op).
        FileExistsError: `path` exists and is not an empty folder.
        MissingExtraError: the converter is not installed (`pip install "keras-ae[export]"`).
    """
    if format not in FORMATS:
        raise InputError(f"Unknown export format {format!r}; expected one of {list(FORMATS)}.")
    path = _check_destination(path)
    endpoints = task_for(model)(model).export_endpoints()
    if anomaly is not None and "anomaly_score" in endpoints:
        score = preset_score(model, anomaly)
        endpoints["anomaly_score"] = (lambda x: ops.cast(score(x), "float32"), endpoints["anomaly_score"][1])
    offered = list(endpoints) if format == "savedmodel" else [name for name in CONVERTED_SIGNATURES if name in endpoints]
    chosen = offered if signatures is None else list(signatures)
    unknown = sorted(set(chosen) - set(offered))
    if unknown or not chosen:
        raise InputError(f"{format} export takes the signatures {offered} of {type(model).__name__}; got {list(chosen)}.")
    endpoints = {name: endpoints[name] for name in chosen}
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        written = staging / "export"
        if format == "savedmodel":
            _write_savedmodel(model, endpoints, written)
        else:
            written.mkdir()
            (_write_litert if format == "litert" else _write_onnx)(model, endpoints, written)
        if path.exists():
            path.rmdir()
        written.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _write_savedmodel(model, endpoints, folder):
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in endpoints.items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(str(folder), verbose=False)


def _refusal(converter, signature, error):
    """A converter's failure as one line: the signature, and the op it could not express where its message names one."""
    text = str(error)
    op = re.search(r"'(tf\.[A-Za-z0-9_]+|[A-Z][A-Za-z0-9]+)' op|[Oo]p[ ]?(?:type)?[: ]+'?([A-Z][A-Za-z0-9]+)'?", text)
    named = next((group for group in (op.groups() if op else ()) if group), None)
    cause = f"the op {named}" if named else text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    return InputError(f"{converter} cannot convert the {signature} signature: {cause}; export it as a SavedModel instead.")


def _write_litert(model, endpoints, folder):
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401  (the runtime the export is checked with)
    except ImportError:
        raise MissingExtraError('LiteRT export needs ai-edge-litert: pip install "keras-ae[export]"') from None
    saved = folder / "saved_model"
    _write_savedmodel(model, endpoints, saved)
    try:
        for name in endpoints:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=[name])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            try:
                (folder / f"{name}.tflite").write_bytes(converter.convert())
            except Exception as error:  # the converter raises ConverterError and others, with the MLIR diagnostics
                raise _refusal("LiteRT", name, error) from None
    finally:
        shutil.rmtree(saved, ignore_errors=True)


def _write_onnx(model, endpoints, folder):
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise MissingExtraError('ONNX export needs tf2onnx: pip install "keras-ae[export]"') from None
    for name, (function, signature) in endpoints.items():
        try:
            proto, _ = tf2onnx.convert.from_function(tf.function(function), input_signature=signature, opset=ONNX_OPSET)
        except Exception as error:  # tf2onnx raises ValueError, RuntimeError and others for unsupported ops
            raise _refusal("ONNX", name, error) from None
        unknown = sorted({node.op_type for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain)})
        if unknown:  # tf2onnx logs an op it cannot convert and leaves it in the graph, where no ONNX runtime can run it
            raise InputError(f"ONNX cannot convert the {name} signature: the op {unknown[0]}; export it as a SavedModel instead.")
        (folder / f"{name}.onnx").write_bytes(proto.SerializeToString())
