"""A card's form as plain data: each section's keys, their JSON types and ranges, and which are required.

`check(card, source)` walks `CARD` and raises a one-line ValueError naming the source and the dotted field
(`card.json: recipe.batch_size must be an integer from 1 to 1048576; got 0.`), before anything is built.
Keys the schema does not list are allowed, so a newer card still loads, except in `network`: its keys are
the builder's arguments. The bounds keep a card from asking for more than a machine can build.
"""

import inspect
import json
import math
import numbers
import os
import re
from pathlib import PurePath

from keras_ae import files

# The values a card may name; the modules that act on them import them from here, so reading a card needs no TensorFlow.
SPLIT_PATTERN = re.compile(r"^(?P<base>[a-z]+)(\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")
BINARIZE_MODES = (None, "static", "dynamic", "fixed")
SCALINGS = ("minmax", "standard")
RATINGS_KINDS = ("implicit", "explicit")  # data.ratings: Liang et al.'s positives, or explicit ratings for AutoRec
NETWORK_KINDS = ("conv", "conv1d", "dense")  # the builders of keras_ae.networks
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # recipe.precision: Keras dtype policies, or auto

MAX_WIDTH = 65_536  # latent_dim, hidden units, filters and dense units
MAX_INPUT_VALUES = 2**24  # values in one example: 16,777,216, e.g. 2048 x 2048 x 4
MAX_PARAMETERS = 2**28  # weights of encoder and decoder together, 1 GiB in float32 (estimated before building)
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 2**20
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def is_dataset(value):
    """A dataset name (`mnist`, `ml-latest-small`), or an absolute path without '..', as `keras-ae train --data` writes."""
    return bool(DATASET_NAME.fullmatch(value)) or (os.path.isabs(value) and ".." not in PurePath(value).parts)


def positive_count(value, name, expected="a positive integer"):
    """`value` as an int when it is a positive integer (numpy's included, bool not), else a one-line ValueError
    naming `name`: the one check of a count given as an argument (epochs, batch sizes, limits)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return int(value)


JSON_TYPES = {"object": dict, "array": (list, tuple), "string": str, "boolean": bool, "integer": int,
              "number": (int, float), "null": type(None)}
ARTICLES = {"object": "an object", "array": "a list", "string": "a string", "boolean": "true or false",
            "integer": "an integer", "number": "a number", "null": "null"}


def _kinds(spec):
    return spec["type"] if isinstance(spec["type"], tuple) else (spec["type"],)


def _is(value, kind):
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "number" and isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, JSON_TYPES[kind])


def integer(low, high=None, **more):
    return {"type": "integer", "minimum": low, "maximum": high, **more}


def number(low, high=None, below=None, **more):
    return {"type": "number", "minimum": low, "maximum": high, "below": below, **more}


def optional(spec):
    """The same spec, or null."""
    return {**spec, "type": (*_kinds(spec), "null")}


WIDTH = integer(1, MAX_WIDTH)
SEED = integer(0, 2**32 - 1)
FRACTION = number(0, 1)
SPLIT = {"type": "string", "pattern": SPLIT_PATTERN.pattern,
         "expect": "a split such as 'train', 'test' or 'train[:5000]'"}
SHA256 = {"type": "string", "pattern": r"^[0-9a-f]{64}$", "expect": "64 lowercase hex digits"}
OBJECT = {"type": "object"}
TEXT = {"type": "string"}

CARD = {"type": "object", "what": "a card", "fields": {
    "name": {"type": "string", "required": True, "pattern": r"^[a-z0-9_]+$",
             "expect": "a lowercase name: it must match ^[a-z0-9_]+$"},
    "description": TEXT,
    "terms": optional(TEXT),
    "model": {"type": "object", "required": True, "fields": {
        "class_name": {"type": "string", "required": True},
        "config": OBJECT,
    }},
    "network": {"type": "object", "fields": {
        "kind": {"type": "string", "required": True, "enum": NETWORK_KINDS},
        "input_shape": {"type": "array", "required": True, "min_items": 1, "items": integer(1, MAX_INPUT_VALUES)},
        "latent_dim": {**WIDTH, "required": True},
        "hidden_units": {"type": "array", "items": WIDTH},
        "filters": {"type": "array", "min_items": 1, "items": WIDTH},
        "kernel_size": {**integer(1, 1024), "type": ("integer", "array"), "min_items": 1, "items": integer(1, 1024)},
        "strides": integer(1, 1024),
        "dense_units": optional(WIDTH),
        "activation": optional(TEXT),
        "code_activation": optional(TEXT),
        "output_activation": optional(TEXT),
        "batch_norm": {"type": "boolean"},
        "dropout": number(0, below=1),
        "kernel_regularizer": {"type": ("object", "string", "null")},
        "variational": {"type": "boolean"},
        "spatial_code": {"type": "boolean"},
        "scaling": {"type": ("string", "null"), "enum": [*SCALINGS, None]},
    }},
    "data": {"type": "object", "fields": {
        "dataset": {"type": "string", "required": True, "check": is_dataset,
                    "expect": "a dataset name (lowercase letters, digits, _ and -) or an absolute path without '..'"},
        "train_split": {**SPLIT, "required": True},
        "test_split": {**SPLIT, "required": True},
        "monitor_split": SPLIT,
        "validation_split": optional(number(0, below=1)),
        "binarize": {"type": ("string", "null"), "enum": list(BINARIZE_MODES)},
        "flatten": {"type": "boolean"},
        "with_labels": {"type": "boolean"},
        "image_size": optional({"type": "array", "min_items": 2, "max_items": 2, "items": integer(1, MAX_WIDTH)}),
        "color_mode": {"type": ("string", "null"), "enum": [*files.CHANNELS, None]},
        "label_column": {"type": ("integer", "string", "null")},
        "columns": optional({"type": "array"}),
        "ratings": {"type": "string", "enum": list(RATINGS_KINDS)},
        "heldout_users": number(0, 1),
        "split_seed": SEED,
        "heldout_hash": optional(SHA256),
        "threshold": optional(number(None)),
    }},
    "recipe": {"type": "object", "fields": {
        "epochs": integer(1, MAX_EPOCHS, required=True),
        "batch_size": integer(1, MAX_BATCH_SIZE, required=True),
        "optimizer": {"type": "object", "fields": {"class_name": {"type": "string", "required": True}, "config": OBJECT}},
        "learning_rate_schedule": {"type": ("string", "null"), "enum": ["cosine", None]},
        "final_learning_rate_fraction": FRACTION,
        "seed": SEED,
        "steps_per_execution": integer(1, 100_000),
        "early_stopping_patience": optional(integer(0)),
        "precision": {"type": "string", "enum": list(PRECISIONS)},
        "initial_weights": {"type": "object", "fields": {  # fine-tune: start from a preset of the same network
            "preset": {"type": "string", "required": True},
            "sha256": {**SHA256, "required": True},
        }},
    }},
    "evaluation": OBJECT,
    "training": OBJECT,
    "metrics": OBJECT,
    "weights": {"type": "object", "required": True, "fields": {
        "file": {"type": "string", "required": True, "pattern": r"^(?!\.\.?$)[^/\\]+$",
                 "expect": "a plain file name, without folders or '..'"},
        "sha256": {**optional(SHA256), "expect": "64 lowercase hex digits, or null"},
        "size": {**optional(integer(0)), "expect": "a non-negative integer of bytes, or null"},
        "url": optional(TEXT),
    }},
    "anomaly": optional({"type": "object", "fields": {
        "threshold_rule": {"type": "string", "enum": ["percentile", "mean_plus_std", "best_accuracy"]},
        "threshold_source": TEXT,
        "percentile": number(0, 100),
        "threshold": optional(number(None)),
    }}),
}}

def _shown(value):
    """A value as JSON, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _described(value):
    """A value's JSON type, and for a scalar the value: `a string ("32")`."""
    kind = next((kind for kind in JSON_TYPES if _is(value, kind)), None)
    if kind in ("object", "array"):
        return ARTICLES[kind]
    return f"{ARTICLES[kind]} ({_shown(value)})" if kind in ("string", "integer", "number") else _shown(value)


def _range(spec):
    low, high, below = spec.get("minimum"), spec.get("maximum"), spec.get("below")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    limits = [f">= {low}"] * (low is not None) + [f"< {below}"] * (below is not None) + [f"<= {high}"] * (high is not None)
    return f" {' and '.join(limits)}" if limits else ""


def expected(spec):
    """What a spec asks for, in words."""
    if "expect" in spec:
        return spec["expect"]
    if "enum" in spec:
        return f"one of {_shown(spec['enum'])}"
    words = []
    for kind in _kinds(spec):
        word = ARTICLES[kind]
        if kind in ("integer", "number"):
            word += _range(spec)
        elif kind == "object" and spec.get("fields"):
            fields = spec["fields"]
            named = list(fields) if len(fields) <= 4 else [key for key in fields if fields[key].get("required")] + ["..."]
            word += f" with {', '.join(named)}"
        elif kind == "array" and spec.get("min_items"):
            least = "" if spec.get("max_items") == spec["min_items"] else "at least "
            word += f" of {least}{spec['min_items']} item{'' if spec['min_items'] == 1 else 's'}"
        words.append(word)
    return " or ".join(words)


def _in_range(value, spec):
    low, high, below = spec.get("minimum"), spec.get("maximum"), spec.get("below")
    return (low is None or value >= low) and (high is None or value <= high) and (below is None or value < below)


def _complain(source, field, spec, got):
    raise ValueError(f"{source}: {field} must be {expected(spec)}; got {got}.")


def _missing(value, spec, field, source):
    required = [key for key, child in spec["fields"].items() if child.get("required")]
    missing = [f"{field}.{key}" if field else key for key in required if key not in value]
    if missing:
        raise ValueError(f"{source} lacks the fields {missing}; {spec.get('what', field)} needs {required}.")


def walk(value, spec, field, source):
    """Check `value` against `spec`; `field` is its dotted name in the card."""
    if not any(_is(value, kind) for kind in _kinds(spec)):
        _complain(source, field, spec, _described(value))
    text = isinstance(value, str)
    if (
        ("enum" in spec and value not in spec["enum"])
        or (text and "pattern" in spec and not re.fullmatch(spec["pattern"], value))
        or (text and "check" in spec and not spec["check"](value))
        or (_is(value, "number") and not _in_range(value, spec))
    ):
        _complain(source, field, spec, _shown(value))
    if _is(value, "array"):
        if not spec.get("min_items", 0) <= len(value) <= spec.get("max_items", len(value)):
            _complain(source, field, spec, _shown(value) if value else "an empty list")
        for index, item in enumerate(value if "items" in spec else ()):
            walk(item, spec["items"], f"{field}[{index}]", source)
    if isinstance(value, dict) and spec.get("fields"):
        _missing(value, spec, field, source)
        for key, child in spec["fields"].items():
            if key in value:
                walk(value[key], child, f"{field}.{key}" if field else key, source)


def builder_arguments(kind):
    """{argument: default} of the network builder `kind`."""
    from keras_ae import networks

    return {name: parameter.default for name, parameter in inspect.signature(networks.BUILDERS[kind]).parameters.items()}


def parameter_estimate(network):
    """About how many weights a card's network section builds, encoder and decoder together, without building it."""
    options = {**builder_arguments(network["kind"]), **network}
    shape, latent = options["input_shape"], options["latent_dim"]
    heads = 2 if options["variational"] else 1
    if network["kind"] == "dense":
        widths = [math.prod(shape), *options["hidden_units"]]
        return 2 * sum(a * b for a, b in zip(widths, widths[1:])) + (heads + 1) * widths[-1] * latent
    *spatial, channels = shape if len(shape) > 1 else (*shape, 1)
    filters, kernel = list(options["filters"]), options["kernel_size"]
    taps = math.prod(kernel) if _is(kernel, "array") else kernel ** len(spatial)
    widths = [channels, *filters]  # the decoder mirrors the encoder's convolutions and adds one of filters[-1] to itself
    convolutions = taps * (2 * sum(a * b for a, b in zip(widths, widths[1:])) + filters[-1] ** 2)
    if options.get("spatial_code"):
        return convolutions + (heads + 1) * filters[-1] * latent
    features = filters[-1] * math.prod(-(-side // options["strides"] ** len(filters)) for side in spatial)
    dense_units = options["dense_units"]
    encoder_code = features * dense_units + heads * dense_units * latent if dense_units else heads * features * latent
    return convolutions + encoder_code + latent * features


def check_network(card, source):
    """A network section takes its builder's arguments only, and stays within the size bounds; without one, model.config
    must hold the encoder and decoder."""
    network = card.get("network")
    if network is None:
        config = card["model"].get("config", {})
        if not all(isinstance(config.get(role), dict) for role in ("encoder", "decoder")):
            raise ValueError(f"{source} lacks the field network: a card needs a network section (builder arguments), "
                             "or the encoder and decoder in model.config.")
        return
    arguments = builder_arguments(network["kind"])
    unknown = sorted(set(network) - set(arguments) - {"kind"})
    if unknown:
        raise ValueError(f"{source}: network.{unknown[0]} is not an argument of the {network['kind']} network; "
                         f"it takes {sorted(arguments)}.")
    values = math.prod(network["input_shape"])
    if values > MAX_INPUT_VALUES:
        raise ValueError(f"{source}: network.input_shape {network['input_shape']} is {values} values per example; "
                         f"the most a card may ask for is {MAX_INPUT_VALUES}.")
    estimate = parameter_estimate(network)
    if estimate > MAX_PARAMETERS:
        shape, latent = network["input_shape"], network["latent_dim"]
        raise ValueError(f"{source}: network (input_shape {shape}, latent_dim {latent}) would "
                         f"build about {estimate:.3g} weights; the most a card may ask for is {MAX_PARAMETERS} "
                         "(1 GiB of float32).")


def check(card, source="card", network=True):
    """Raise a one-line ValueError naming `source` and the field where `card` departs from `CARD`; return the card.

    `network=False` skips checking the network section against its builder's arguments (that imports Keras).
    """
    if not isinstance(card, dict):
        raise ValueError(f"{source} must hold a JSON object (a card); got {_described(card)}.")
    walk(card, CARD, "", source)
    spec = card.get("data") or {}
    if spec.get("monitor_split") is not None and spec.get("monitor_split") == spec.get("test_split"):
        raise ValueError(f"{source}: data.monitor_split is the test split {spec['test_split']!r}; the test split is for the "
                         "final number only: monitor a validation part of the training data (data.monitor_split "
                         "'validation' with data.validation_split, e.g. 0.1)")
    if network:
        check_network(card, source)
    return card
