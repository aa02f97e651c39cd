"""Size and latency of each export format (SavedModel, LiteRT, ONNX) of a zoo entry's `serve` signature, side by side.

    KERAS_AE_DATA=../shared/data python scripts/export_benchmark.py     # writes benchmarks/export.json

For `conv_ae_mnist` and `ae_ecg5000`: the bytes on disk of each export of `serve`, and the median seconds of one call at
batch 1 and at batch 256 (bundled test examples; the formats take turns, `ROUNDS` rounds of `CALLS` calls each, after a
warm-up call), each run by its own runtime: TensorFlow, `ai_edge_litert`'s Interpreter, `onnxruntime`.
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import keras_ae
from keras_ae import weights

ENTRIES = {"conv_ae_mnist": "mnist", "ae_ecg5000": "ecg5000"}
BATCHES = (1, 256)
ROUNDS, CALLS = 5, 20
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "export.json"


def size(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def runners(model, folder):
    """{format: (bytes on disk, a function of a batch)} of the model's `serve` signature."""
    keras_ae.export(model, folder / "savedmodel", signatures=("serve",))
    served = tf.saved_model.load(str(folder / "savedmodel")).signatures["serve"]
    keras_ae.export(model, folder / "litert", format="litert", signatures=("serve",))
    interpreter = Interpreter(str(folder / "litert" / "serve.tflite"))
    lite = interpreter.get_signature_runner()
    keras_ae.export(model, folder / "onnx", format="onnx", signatures=("serve",))
    session = onnxruntime.InferenceSession(str(folder / "onnx" / "serve.onnx"))
    name = session.get_inputs()[0].name
    return {
        "savedmodel": (size(folder / "savedmodel"), lambda x: served(x=tf.constant(x))),
        "litert": (size(folder / "litert"), lambda x: lite(x=x)),
        "onnx": (size(folder / "onnx"), lambda x: session.run(None, {name: x})),
    }


def main():
    results = {}
    for entry, dataset in ENTRIES.items():
        model = keras_ae.load(entry)
        examples = keras_ae.data.bundled_sample(dataset)[0].reshape((-1, *model.input_shape_per_example)).astype("float32")
        batches = {batch: np.resize(examples, (batch, *examples.shape[1:])) for batch in BATCHES}
        with tempfile.TemporaryDirectory() as folder:
            formats = runners(model, Path(folder))
            timings = {(name, batch): [] for name in formats for batch in BATCHES}
            for name, (_, run) in formats.items():
                for batch in BATCHES:
                    run(batches[batch])  # warm-up
            for _ in range(ROUNDS):
                for name, (_, run) in formats.items():
                    for batch in BATCHES:
                        start = time.perf_counter()
                        for _ in range(CALLS):
                            run(batches[batch])
                        timings[name, batch].append((time.perf_counter() - start) / CALLS)
            results[entry] = {name: {"bytes": formats[name][0], **{f"batch_{batch}_ms": 1000 * statistics.median(timings[name, batch])
                                                                   for batch in BATCHES}} for name in formats}
        print(f"| `{entry}` | " + " | ".join(
            f"{name}: {value['bytes'] / 1024:,.0f} KiB, {value['batch_1_ms']:.2f} / {value['batch_256_ms']:.1f} ms"
            for name, value in results[entry].items()) + " |", flush=True)
    results["command"] = "KERAS_AE_DATA=../shared/data python scripts/export_benchmark.py"
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(results, indent=2) + "\n"), RESULTS)


if __name__ == "__main__":
    main()
