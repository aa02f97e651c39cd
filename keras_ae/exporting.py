"""Export to a TensorFlow SavedModel with the named signatures the model's family's task declares, for serving without
keras_ae."""

import shutil
import tempfile
from pathlib import Path

import keras

from keras_ae.models import task_for


def _check_destination(path):
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"Export path {path} exists and is not an empty directory; choose a new path or remove it.")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return path


def export(model, path):
    """Write a SavedModel with the signatures of the family task's `export_endpoints()`.

    Every family has `serve` (reconstruction), `encode`, `decode` and `anomaly_score`, over float32
    `[None, *input_shape]` inputs and `[None, *code_shape]` codes; a VAE adds `sample(count, seed)`.
    The SavedModel appears at `path` only once it is complete.
    """
    path = _check_destination(path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in task_for(model)(model).export_endpoints().items():
        archive.add_endpoint(name, function, input_signature=signature)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        archive.write_out(str(staging / "saved_model"), verbose=False)
        if path.exists():
            path.rmdir()
        (staging / "saved_model").rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
