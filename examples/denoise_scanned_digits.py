"""Denoise a folder of noisy scans with the zoo's `dae_mnist`, then train a denoiser for your own kind of noise.

Run it with `KERAS_AE_DATA` pointing at a folder holding `mnist/` (IDX files); `KERAS_AE_TUTORIAL_TINY=1` shrinks it.
"""

import os
import tempfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image

import keras_ae
from keras_ae import metrics, networks, plot

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
rng = np.random.default_rng(0)

# 1. A folder of noisy scans: MNIST test digits with Gaussian noise of standard deviation 0.5, clipped to [0, 1] (the
#    noise dae_mnist was trained to undo), written as PNG files. Your own folder of images goes here instead.
clean = np.concatenate(list(keras_ae.data.load("mnist", split="test[:256]" if TINY else "test[:2000]", batch_size=256)))
scans = Path(tempfile.mkdtemp()) / "scans"
scans.mkdir()
for index, image in enumerate(np.clip(clean + rng.normal(0.0, 0.5, clean.shape), 0.0, 1.0)):
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(scans / f"scan_{index:05d}.png")

# 2. Read the folder in file order (a path is never shuffled), at the size the model takes, and denoise it with the
#    zoo's dae_mnist (bundled weights, no download); data.names maps each row back to its file.
model = keras_ae.load("dae_mnist")
noisy = np.concatenate(list(keras_ae.data.load(scans, image_size=(28, 28), batch_size=256)))
names = keras_ae.data.names(scans)
denoised = np.asarray(model.denoise(noisy))
for name, image in zip(names, denoised):
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(scans.parent / f"denoised_{Path(name).name}")
print(f"denoised {len(names)} files, e.g. {names[0]} -> denoised_{Path(names[0]).name}")
# The same from the command line: keras-ae denoise dae_mnist scans/ --out denoised/


def psnr(images):
    """PSNR in dB of images against the clean ones (pixel values in [0, 1])."""
    return metrics.psnr(float(np.mean((images - clean) ** 2)))


print(f"dae_mnist: noisy {psnr(noisy):.2f} dB -> denoised {psnr(denoised):.2f} dB")

# 3. Your own noise: a scanner that drops pixels. Train a denoising autoencoder on masking noise (a random 30% of the
#    pixels set to 0 at each step), with a validation part of the training split to stop on.
train = keras_ae.data.load("mnist", split="train[:3000]" if TINY else "train", validation_split=0.1, batch_size=128)
validation = keras_ae.data.load("mnist", split="validation", validation_split=0.1, batch_size=256)
encoder, decoder = networks.conv((28, 28, 1), latent_dim=32, seed=0)
masking = keras_ae.DenoisingAutoencoder(encoder, decoder, noise="masking", noise_level=0.3, reconstruction="bce", seed=0)
masking.compile(optimizer=keras.optimizers.Adam(1e-3))
masking.fit(train, validation_data=validation, epochs=1 if TINY else 10, verbose=2,
            callbacks=[keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)])

dropped = clean * (rng.random(clean.shape) >= 0.3)
restored = np.asarray(masking.denoise(dropped.astype("float32")))
print(f"masking: dropped pixels {psnr(dropped):.2f} dB -> restored {psnr(restored):.2f} dB")

# 4. A picture: clean, dropped and restored digits, one row each.
picture = Path(tempfile.mkdtemp()) / "denoised.png"
plot.image_grid([clean[:10], dropped[:10], restored[:10]], picture, row_titles=["clean", "dropped", "restored"])
print("picture written to", picture)
