"""A variational autoencoder from scratch with `model.fit`: build, train, sample, save and load it back.

Run it with `KERAS_AE_DATA` pointing at a folder holding `mnist/` (IDX files); `KERAS_AE_TUTORIAL_TINY=1` shrinks it.
"""

import os
import tempfile
from pathlib import Path

import keras
import numpy as np

import keras_ae
from keras_ae import networks

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
train_split = "train[:2000]" if TINY else "train"

# 1. Data: dynamically binarized MNIST, with a seeded 10% of the training split held out for validation. The test
#    split stays untouched until the final number.
train = keras_ae.data.load("mnist", split=train_split, validation_split=0.1, batch_size=128, binarize="dynamic")
validation = keras_ae.data.load("mnist", split="validation", validation_split=0.1, batch_size=256, binarize="fixed")

# 2. The model: a convolutional encoder and decoder, and the VAE's objective (its own train_step).
encoder, decoder = networks.conv((28, 28, 1), latent_dim=16, variational=True, seed=0)
model = keras_ae.VAE(encoder, decoder, kl_warmup_steps=500, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, validation_data=validation, epochs=1 if TINY else 20, verbose=2)

# 3. Use it: codes, samples, a bound on the likelihood of validation images.
images = next(iter(validation))
z_mean, _ = model.encode(images[:8])
samples = model.sample(16, seed=0)
print("codes", z_mean.shape, "samples", samples.shape,
      f"importance-weighted bound {float(np.mean(model.importance_weighted_bound(images[:64], samples=20))):.1f} nats")

# 4. Save it as a preset (card + weights + sha256) and load it back.
folder = Path(tempfile.mkdtemp()) / "my_vae"
keras_ae.save_preset(model, folder)
again = keras_ae.load(folder)
np.testing.assert_allclose(again.encode(images[:8])[0], z_mean, atol=1e-5)
print("reloaded", folder)
