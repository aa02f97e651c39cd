"""A card's form: `zoo/card.schema.json` (JSON Schema, checked by `jsonschema`), plus the checks no schema can say.

`check(card, source)` raises a one-line ValueError naming the source and the dotted field
(`card.json: recipe.batch_size must be an integer from 1 to 1048576; got 0.`), before anything is built.
Keys the schema does not list are allowed, so a newer card still loads, except in `network`: its keys are
the builder's arguments. The bounds keep a card from asking for more than a machine can build.
"""

import functools
import inspect
import json
import math
import numbers
import re

from keras_ae import weights
from keras_ae.errors import InputError

# The values a card may name; the modules that act on them import them from here, so reading a card needs no TensorFlow.
SPLIT_PATTERN = re.compile(r"^(?P<base>[a-z]+)(\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")
BINARIZE_MODES = (None, "static", "dynamic", "fixed")
RATINGS_KINDS = ("implicit", "explicit")  # data.ratings: Liang et al.'s positives, or explicit ratings for AutoRec
NETWORK_KINDS = ("conv", "conv1d", "dense", "summed_dense")  # the builders of keras_ae.networks
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # recipe.precision: Keras dtype policies, or auto

MAX_INPUT_VALUES = 2**24  # values in one example: 16,777,216, e.g. 2048 x 2048 x 4
MAX_PARAMETERS = 2**28  # weights of encoder and decoder together, 1 GiB in float32 (estimated before building)
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SCHEMA_FILE = "card.schema.json"


def positive_count(value, name, expected="a positive integer"):
    """`value` as an int when it is a positive integer (numpy's included, bool not), else a one-line ValueError
    naming `name`: the one check of a count given as an argument (epochs, batch sizes, limits)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be {expected}; got {value!r}")
    return int(value)


@functools.cache
def card_schema():
    """The published JSON Schema of a card (`zoo/card.schema.json`, shipped as `keras_ae/zoo/card.schema.json`)."""
    return json.loads((weights.ZOO_DIR / SCHEMA_FILE).read_text())


@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(card_schema())


ARTICLES = {"object": "an object", "array": "a list", "string": "a string", "boolean": "true or false",
            "integer": "an integer", "number": "a number", "null": "null"}


def _shown(value):
    """A value as JSON, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _described(value):
    """A value's JSON type, and for a scalar the value: `a string ("32")`."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    kind = ("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int) else "number"
            if isinstance(value, float) else "string" if isinstance(value, str) else None)
    return f"{ARTICLES[kind]} ({_shown(value)})" if kind in ("string", "integer", "number") else _shown(value)


def _range(spec):
    low, high, below = spec.get("minimum"), spec.get("maximum"), spec.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    limits = [f">= {low}"] * (low is not None) + [f"< {below}"] * (below is not None) + [f"<= {high}"] * (high is not None)
    return f" {' and '.join(limits)}" if limits else ""


def expected(spec):
    """What a schema node asks for, in words."""
    if "description" in spec:
        return spec["description"]
    if "enum" in spec:
        return f"one of {_shown(spec['enum'])}"
    words = []
    for kind in spec["type"] if isinstance(spec["type"], list) else [spec["type"]]:
        word = ARTICLES[kind]
        if kind in ("integer", "number"):
            word += _range(spec)
        elif kind == "object" and spec.get("properties"):
            fields = spec["properties"]
            named = list(fields) if len(fields) <= 4 else [*spec.get("required", []), "..."]
            word += f" with {', '.join(named)}"
        elif kind == "array" and spec.get("minItems"):
            least = "" if spec.get("maxItems") == spec["minItems"] else "at least "
            word += f" of {least}{spec['minItems']} item{'' if spec['minItems'] == 1 else 's'}"
        words.append(word)
    return " or ".join(words)


def _dotted(path):
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _complaint(error, source):
    """One line for a `jsonschema` error: the field, what it must be, what it is."""
    field = _dotted(error.absolute_path)
    if error.validator == "required":
        required = error.validator_value
        missing = [f"{field}.{key}" if field else key for key in required if key not in error.instance]
        return f"{source} lacks the fields {missing}; {field or 'a card'} needs {required}."
    got = _described(error.instance) if error.validator == "type" or error.instance == [] else _shown(error.instance)
    return f"{source}: {field} must be {expected(error.schema)}; got {got}."


def _non_finite(value, field=""):
    """The dotted name of the first NaN or infinite number in a card (JSON has none, Python's parser allows them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return field
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite(child, f"{field}[{key}]" if isinstance(key, int) else f"{field}.{key}".lstrip("."))
        if found is not None:
            return found
    return None


def builder_arguments(kind):
    """{argument: default} a card's network section may give the builder `kind` (not `seed` and `dtype`: the recipe's
    seed and precision set those when it trains)."""
    from keras_ae import networks

    parameters = inspect.signature(networks.BUILDERS[kind]).parameters.items()
    return {name: parameter.default for name, parameter in parameters if name not in ("seed", "dtype")}


def parameter_estimate(network):
    """About how many weights a card's network section builds, encoder and decoder together, without building it."""
    options = {**builder_arguments(network["kind"]), **network}
    shape, latent = options["input_shape"], options["latent_dim"]
    heads = 2 if options["variational"] else 1
    if network["kind"] == "dense":
        widths = [math.prod(shape), *options["hidden_units"]]
        return 2 * sum(a * b for a, b in zip(widths, widths[1:])) + (heads + 1) * widths[-1] * latent
    if network["kind"] == "summed_dense":
        widths = [math.prod(shape), *options["hidden_units"]]
        return sum(a * b for a, b in zip(widths, widths[1:])) + heads * widths[-1] * latent + latent * widths[0]
    *spatial, channels = shape if len(shape) > 1 else (*shape, 1)
    filters, kernel = list(options["filters"]), options["kernel_size"]
    taps = math.prod(kernel) if isinstance(kernel, list) else kernel ** len(spatial)
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
            raise InputError(f"{source} lacks the field network: a card needs a network section (builder arguments), "
                             "or the encoder and decoder in model.config.")
        return
    arguments = builder_arguments(network["kind"])
    unknown = sorted(set(network) - set(arguments) - {"kind"})
    if unknown:
        raise InputError(f"{source}: network.{unknown[0]} is not an argument of the {network['kind']} network; "
                         f"it takes {sorted(arguments)}.")
    values = math.prod(network["input_shape"])
    if values > MAX_INPUT_VALUES:
        raise InputError(f"{source}: network.input_shape {network['input_shape']} is {values} values per example; "
                         f"the most a card may ask for is {MAX_INPUT_VALUES}.")
    estimate = parameter_estimate(network)
    if estimate > MAX_PARAMETERS:
        shape, latent = network["input_shape"], network["latent_dim"]
        raise InputError(f"{source}: network (input_shape {shape}, latent_dim {latent}) would "
                         f"build about {estimate:.3g} weights; the most a card may ask for is {MAX_PARAMETERS} "
                         "(1 GiB of float32).")


def check(card, source="card", network=True):
    """Raise a one-line ValueError naming `source` and the field where `card` departs from `CARD`; return the card.

    `network=False` skips checking the network section against its builder's arguments (that imports Keras).
    """
    if not isinstance(card, dict):
        raise InputError(f"{source} must hold a JSON object (a card); got {_described(card)}.")
    error = min(_validator().iter_errors(card), key=lambda error: (len(error.absolute_path), list(map(str, error.absolute_path))), default=None)
    if error is not None:
        raise InputError(_complaint(error, source))
    field = _non_finite(card)
    if field is not None:
        raise InputError(f"{source}: {field} must be a finite number; got NaN or infinity.")
    spec = card.get("data") or {}
    if spec.get("monitor_split") is not None and spec.get("monitor_split") == spec.get("test_split"):
        raise InputError(f"{source}: data.monitor_split is the test split {spec['test_split']!r}; the test split is for the "
                         "final number only: monitor a validation part of the training data (data.monitor_split "
                         "'validation' with data.validation_split, e.g. 0.1)")
    if network:
        check_network(card, source)
    return card
