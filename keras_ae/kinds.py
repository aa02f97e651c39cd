"""Data kinds: how a family's data is read, for training and for measuring. A family's task names its kind
(`Task.data_kind`); training, evaluation and the demo ask the kind, never what a card's data section holds.

    kind = kinds.of(task)
    dataset = kind.training_data(card.data, "train", batch_size=128, shuffle=True, seed=0)
    arrays = kind.measure_arrays(card, "test")      # {"examples", "inputs", "labels", "targets"} for `Task.measure`

`card` is a typed card (`keras_ae.cards.Card`) and `spec` its `data` section (`keras_ae.cards.Data`); their JSON forms
(dicts) are taken too.
"""

import numpy as np

from keras_ae import data, ratings
from keras_ae.card_types import as_card, as_data
from keras_ae.errors import InputError
from keras_ae.schema import positive_count

EVALUATION_BINARIZATION = {None: None, "static": "static", "dynamic": "fixed", "fixed": "fixed"}
READ_BATCH = 1000  # examples per batch when a split is read whole for measuring


def first_of(split, limit):
    """The first `limit` examples of a split, itself maybe sliced: `first_of("test[100:]", 50)` is "test[100:150]".

    Raises:
        InputError: `limit` is not a positive integer, `split` is unknown, or it is sliced by percentages.
    """
    if limit is None:
        return split
    limit = positive_count(limit, "limit", "a positive number of examples (None: all)")
    base, start, stop = data.parse_split(split)
    if (start or "").endswith("%") or (stop or "").endswith("%"):
        raise InputError(f"limit needs a split sliced by example counts, not percentages; got {split!r}.")
    first = int(start or 0)
    return f"{base}[{first}:{first + limit if stop is None else min(int(stop), first + limit)}]"


class Examples:
    """Images, tables and signals, by name or path (`keras_ae.data.load`): batches of examples for training; for a
    measure, the clean examples, the inputs as trained on (binarized once where the card binarizes) and their labels
    (for anomaly detection and the linear probe)."""

    with_labels = False  # batches are (examples, labels), for a family conditioned on them

    def options(self, spec):
        return {**data.card_options(spec), "with_labels": self.with_labels}  # card_options takes either form

    def training_data(self, spec, split, batch_size, shuffle, seed=0, data_dir=None, **more):
        """A batched `tf.data.Dataset` of a split, as training reads it (`more`: `input_context`, `drop_remainder`)."""
        spec = as_data(spec)
        return data.load(spec.dataset, split=split, batch_size=batch_size, shuffle=shuffle, seed=seed, data_dir=data_dir,
                         **{**self.options(spec), **more})

    def count(self, spec, split, seed=0, data_dir=None):
        spec = as_data(spec)
        return data.count(spec.dataset, split, seed=seed, data_dir=data_dir, **self.options(spec))

    def arrays(self, card, split, limit=None, binarize=None, data_dir=None, every_label=True):
        """A card's split as numpy arrays (examples, labels); with `every_label`, a one-class card keeps the other labels
        (the anomalies to detect).

        Raises:
            InputError: the card names no dataset, or its data are refused by `keras_ae.data.load`.
        """
        card = as_card(card)
        spec = card.data
        if spec is None:
            raise InputError(f"Card {card.name!r} names no dataset (its data.dataset field); it cannot be measured.")
        options = {**data.card_options(spec), "binarize": binarize, "with_labels": True}
        if every_label:
            options.pop("only_label", None)
        dataset = data.load(spec.dataset, split=first_of(split, limit), batch_size=READ_BATCH, shuffle=False,
                            data_dir=data_dir, **options)
        examples, labels = zip(*dataset.as_numpy_iterator())
        return np.concatenate(examples), np.concatenate(labels)

    def measured(self, examples, inputs, labels):
        """{examples, inputs, targets, labels} as `Task.measure` and the shared measures take them."""
        return {"examples": examples, "inputs": inputs, "targets": labels if self.with_labels else None, "labels": labels}

    def measure_arrays(self, card, split, limit=None, data_dir=None):
        """{examples, inputs, targets, labels} of a card's split (the first `limit` examples) for `Task.measure`."""
        card = as_card(card)
        examples, labels = self.arrays(card, split, limit, data_dir=data_dir)
        mode = EVALUATION_BINARIZATION[card.data.binarize]
        inputs = self.arrays(card, split, limit, binarize=mode, data_dir=data_dir)[0] if mode else examples
        return self.measured(examples, inputs, labels)

    def bundled(self, card, input_shape):
        """The package's bundled sample of the card's dataset, for the demo: the same dict as `measure_arrays`, or None."""
        card = as_card(card)
        name = card.data.dataset
        if not data.has_bundled_sample(name):
            return None
        examples, labels = data.bundled_sample(name)
        examples = examples.reshape((len(examples), *input_shape))
        mode = EVALUATION_BINARIZATION[card.data.binarize]
        return self.measured(examples, np.asarray(data.binarize_images(examples, mode)) if mode else examples, labels)

    def adapt(self, model, spec, data_dir=None):
        """Fit to a trained model what it keeps of its data beyond its weights (nothing, for examples)."""


class LabelledExamples(Examples):
    """Examples with the labels a family is conditioned on: batches of (examples, labels), and the labels as `targets`."""

    with_labels = True


class Ratings:
    """Users' (or items') rows of a ratings matrix (`keras_ae.ratings`): batches of (rows, held-out entries) densified a
    batch at a time; a measure gets the rows and the held-out entries to predict as `targets`."""

    with_labels = False

    def split(self, spec, split, data_dir=None):
        """(inputs, targets) CSR rows of a split, sliced like any split: `test[:100]`."""
        base, start, stop = data.parse_split(split)
        inputs, targets = ratings.split_matrices(spec, base, data_dir)
        rows = slice(data.slice_bound(start, inputs.shape[0]), data.slice_bound(stop, inputs.shape[0]))
        return inputs[rows], None if targets is None else targets[rows]

    def training_data(self, spec, split, batch_size, shuffle, seed=0, data_dir=None, input_context=None, **more):
        """Batches of a split's rows (and their held-out entries), as training reads them.

        Raises:
            InputError: `input_context` shards across more than one input pipeline, or `batch_size` is not a positive
                integer.
        """
        if input_context is not None and input_context.num_input_pipelines > 1:
            raise InputError("Ratings data is not sharded across input pipelines; train recommenders on one worker.")
        inputs, targets = self.split(spec, split, data_dir)
        return ratings.batches(inputs, positive_count(batch_size, "batch_size"), shuffle=shuffle, seed=seed, targets=targets)

    def count(self, spec, split, seed=0, data_dir=None):
        return self.split(spec, split, data_dir)[0].shape[0]

    def measure_arrays(self, card, split, limit=None, data_dir=None):
        inputs, targets = self.split(as_card(card).data, first_of(split, limit), data_dir)
        inputs = np.asarray(inputs.toarray(), "float32")
        targets = None if targets is None else np.asarray(targets.toarray(), "float32")
        return {"examples": inputs, "inputs": inputs, "targets": targets, "labels": None}

    def bundled(self, card, input_shape):
        """Ratings are never bundled (MovieLens is research-use only)."""
        return None

    def adapt(self, model, spec, data_dir=None):
        """A trained recommender keeps the dataset's ids (and what it recommends from) in its weights."""
        model.adapt_to(ratings.card_split(spec, data_dir))


KINDS = {"examples": Examples(), "labelled": LabelledExamples(), "ratings": Ratings()}


def of(task):
    """The data kind a family's task takes."""
    return KINDS[task.data_kind]
