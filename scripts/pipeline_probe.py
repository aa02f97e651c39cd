"""Images/s of one pass over MNIST's training split through `keras_ae.data.load` (batch 128, dynamic binarization),
as shipped (tf.data autotuning off) and with autotuning on, three passes each in alternation.

    KERAS_AE_DATA=../shared/data python scripts/pipeline_probe.py
"""

import time

import tensorflow as tf

from keras_ae import data


def images_per_second(dataset):
    started = time.perf_counter()
    images = sum(int(batch.shape[0]) for batch in dataset)
    return images / (time.perf_counter() - started)


def main(passes=3):
    shipped = data.load("mnist", split="train", batch_size=128, binarize="dynamic")
    autotuned = tf.data.Options()
    autotuned.autotune.enabled = True
    for _ in range(passes):
        for name, dataset in (("autotuning off (shipped)", shipped), ("autotuning on", shipped.with_options(autotuned))):
            print(f"{name}: {images_per_second(dataset):,.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
