"""Write the small bundled samples of real test data that the demo and gallery use (the first 500 of each test split).

    KERAS_AE_DATA=../shared/data python scripts/make_samples.py
"""

import io
from pathlib import Path

import numpy as np

from keras_ae import data, weights

SAMPLE_SIZE = 500
SAMPLES_DIR = Path(data.__file__).resolve().parent / "samples"


def main():
    for name in ("mnist", "fashion_mnist", "ecg5000"):
        examples, labels = data.load_arrays(name, "test")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, examples=examples[:SAMPLE_SIZE], labels=labels[:SAMPLE_SIZE])
        path = SAMPLES_DIR / f"{name}.npz"
        weights.atomic_copy(lambda temporary: Path(temporary).write_bytes(buffer.getvalue()), path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
