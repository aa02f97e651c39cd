"""Compress images to a few hundred bits with a VQ-VAE, and compare with JPEG files at least as large.

Run it with `KERAS_AE_DATA` pointing at a folder holding `mnist/` (IDX files); `KERAS_AE_TUTORIAL_TINY=1` shrinks it.
"""

import io
import os

import numpy as np
from PIL import Image

import keras_ae
from keras_ae import metrics

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
images = np.concatenate(list(keras_ae.data.load("mnist", split="test[:200]" if TINY else "test[:2000]", batch_size=200)))

# 1. The zoo's vqvae_mnist (bundled weights): each 28x28 image becomes a 7x7 grid of indices into a codebook of 256
#    vectors, so 49 bytes before any entropy coding.
model = keras_ae.load("vqvae_mnist")
indices = np.asarray(model.compress(images))
stored = indices.astype(np.uint8).tobytes()  # what you would write to disk: one byte per index
print(f"codes {indices.shape}, {len(stored) / len(images):.0f} bytes per image ({model.bits_per_image} bits)")

# 2. Back to images from the stored bytes alone, and their quality.
restored = np.asarray(model.decompress(np.frombuffer(stored, np.uint8).reshape(indices.shape)))
vqvae_psnr = metrics.psnr(float(np.mean((restored - images) ** 2)))


# 3. JPEG at the smallest quality whose files are at least as large (whole files, headers included, so JPEG is
#    counted at its real size; scripts/compression_benchmark.py also counts its payload alone).
def jpeg_round_trip(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return len(buffer.getvalue()), np.asarray(Image.open(buffer), dtype=np.float32)[..., None] / 255.0


for quality in range(1, 101):
    sizes, decoded = zip(*(jpeg_round_trip(image, quality) for image in images))
    if np.mean(sizes) >= len(stored) / len(images):
        break
jpeg_psnr = metrics.psnr(float(np.mean((np.stack(decoded) - images) ** 2)))
print(f"VQ-VAE {len(stored) / len(images):.0f} bytes/image: PSNR {vqvae_psnr:.2f} dB; "
      f"JPEG quality {quality}, {np.mean(sizes):.0f} bytes/image: PSNR {jpeg_psnr:.2f} dB")
