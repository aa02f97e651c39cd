"""Pictures of what a model does, written as PNG files with matplotlib.

Each picture is drawn on its own `matplotlib.figure.Figure`, so no backend is chosen and pyplot's state (and a notebook's
inline plots) are left alone.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from keras_ae.errors import InputError
from keras_ae.files import atomic_copy


def _image(array):
    array = np.asarray(array, dtype="float32")
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def _subplots(rows=1, columns=1, figsize=None, **kwargs):
    """A new Figure of its own (no pyplot) and its axes, as `pyplot.subplots` returns them."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, **kwargs)


def _save(figure, path):
    """Write the figure whole or not at all; a path without a suffix gets `.png` (the name returned is the one written)."""
    path = Path(path)
    path = path if path.suffix else path.with_name(path.name + ".png")
    atomic_copy(lambda temporary: figure.savefig(temporary, format=path.suffix[1:], dpi=100, bbox_inches="tight"), path)
    return path


def image_grid(rows, path, row_titles=None, title=None):
    """Rows of images (each a sequence of arrays) in one figure; 1-D arrays (signals, table rows) are drawn as lines."""
    rows = [list(row) for row in rows]
    columns = max(len(row) for row in rows)
    figure, axes = _subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 0.95 + 0.3), squeeze=False)
    for row_index, row in enumerate(rows):
        for column in range(columns):
            axis = axes[row_index][column]
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if column < len(row) and np.ndim(row[column]) == 1:
                axis.plot(np.asarray(row[column]), linewidth=0.8)
            elif column < len(row):
                axis.imshow(_image(row[column]), cmap="gray", vmin=0.0, vmax=1.0)
        if row_titles:
            axes[row_index][0].set_ylabel(row_titles[row_index], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def reconstructions(model, images, path, count=10, labels=None):
    """Inputs above the model's reconstructions (given their `labels`, for a conditional model)."""
    images = np.asarray(images[:count])
    outputs = model(images) if labels is None else model(images, np.asarray(labels[:count]))
    return image_grid([images, np.asarray(outputs)], path, ["input", "output"], title="Reconstructions")


def denoising_triplets(model, images, path, count=10, seed=0):
    """Noisy inputs, the model's outputs and the clean images."""
    images = np.asarray(images[:count])
    noisy = np.asarray(model.corrupt(images, seed=seed))
    return image_grid(
        [noisy, np.asarray(model.denoise(noisy)), images], path, ["noisy", "denoised", "clean"],
        title=f"Denoising ({model.noise} {model.noise_level})",
    )


def samples(model, path, count=40, seed=0, columns=10):
    """A grid of a VAE's samples from the prior."""
    drawn = np.asarray(model.sample(count, seed=seed))
    return image_grid([drawn[start:start + columns] for start in range(0, count, columns)], path, title="Samples")


def interpolation(model, start, end, path, steps=10):
    """Decoded points on the line between the codes of two inputs, one strip per pair."""
    strips = np.asarray(model.interpolate(np.asarray(start), np.asarray(end), steps=steps))
    return image_grid(list(strips), path, title="Interpolation")


def latent_manifold(model, path, size=15, extent=2.5):
    """Decodings of a grid over a 2-D latent space."""
    if model.latent_dim != 2:
        raise InputError(f"latent_manifold needs a 2-D latent space; this model's has {model.latent_dim} dimensions.")
    values = np.linspace(-extent, extent, size, dtype="float32")
    grid = np.array([[x, y] for y in values[::-1] for x in values], dtype="float32")
    decoded = np.asarray(model.decode(grid))
    height, width = _image(decoded[0]).shape
    canvas = np.zeros((size * height, size * width), "float32")
    for index, image in enumerate(decoded):
        row, column = divmod(index, size)
        canvas[row * height:(row + 1) * height, column * width:(column + 1) * width] = _image(image)
    figure, axis = _subplots(figsize=(7, 7))
    axis.imshow(canvas, cmap="gray", extent=(-extent, extent, -extent, extent))
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_title("2-D latent manifold")
    return _save(figure, path)


def latent_scatter(model, images, labels, path):
    """Codes (z_mean) of images in a 2-D latent space, coloured by label."""
    codes = np.asarray(model.embed(np.asarray(images)))
    if codes.shape[-1] != 2:
        raise InputError(f"latent_scatter needs 2-D codes; got {codes.shape[-1]} dimensions.")
    figure, axis = _subplots(figsize=(7, 6))
    points = axis.scatter(codes[:, 0], codes[:, 1], c=np.asarray(labels), cmap="tab10", s=4)
    figure.colorbar(points, ax=axis, label="label")
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_title("Latent codes by label")
    return _save(figure, path)


def training_curves(history, path):
    """Every logged metric per epoch, training and validation together."""
    logs = history.history if hasattr(history, "history") else history
    names = sorted(name for name in logs if not name.startswith("val_"))
    figure, axes = _subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    for axis, name in zip(axes[0], names):
        axis.plot(logs[name], label="train")
        if f"val_{name}" in logs:
            axis.plot(logs[f"val_{name}"], label="validation")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.legend()
    return _save(figure, path)
