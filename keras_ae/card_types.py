"""The typed card: `Card` and its sections as frozen dataclasses, built from a card's JSON and turned back into it.

    card = Card.from_json(json.loads(text), source="card.json")   # validated against zoo/card.schema.json
    card.data.test_split, card.recipe.seed, card.weights.sha256
    card.to_json() == json.loads(text)                          # the same keys, in the same order

A section remembers the keys its JSON gave (`given`), so an absent key stays absent and an explicit null stays null,
and keeps the keys it does not know (`extra`: the schema allows them, so a newer card still loads). A field not given
holds its default. The recorded sections (`training`, `metrics`, `subset_metrics`, `evaluation`) are free-form records
of measurements and stay dicts. Change a card with `dataclasses.replace` (or `without` to drop keys).
"""

import copy
import dataclasses
from typing import Any, ClassVar

from keras_ae import schema
from keras_ae.errors import InputError


def _fields(section_class):
    return [field for field in dataclasses.fields(section_class) if field.name not in ("given", "extra")]


def _default(field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _json(value):
    return value.to_json() if isinstance(value, Section) else copy.deepcopy(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Section:
    """A JSON object of a card as a dataclass: its known keys as fields, the others in `extra`."""

    nested: ClassVar[dict] = {}  # key -> the Section class its value is
    given: tuple = dataclasses.field(default=(), repr=False, compare=False)
    extra: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, mapping):
        """The section of a JSON object (already checked against the schema); the object is copied, not kept."""
        known = {field.name for field in _fields(cls)}
        values = {key: cls.nested[key].from_json(value) if key in cls.nested and value is not None else copy.deepcopy(value)
                  for key, value in mapping.items() if key in known}
        extra = {key: copy.deepcopy(value) for key, value in mapping.items() if key not in known}
        return cls(**values, extra=extra, given=tuple(mapping))

    def to_json(self):
        """The JSON object: the keys given, in their order, then fields set away from their default, then other extras."""
        fields = {field.name: field for field in _fields(type(self))}
        added = [name for name, field in fields.items() if name not in self.given and getattr(self, name) != _default(field)]
        keys = [*self.given, *added, *(key for key in self.extra if key not in self.given)]
        return {key: _json(getattr(self, key) if key in fields else self.extra[key]) for key in keys}

    def without(self, *keys):
        """A copy with `keys` absent: fields back to their default (and not written), extras dropped."""
        fields = {field.name: field for field in _fields(type(self))}
        return dataclasses.replace(
            self, **{key: _default(fields[key]) for key in keys if key in fields},
            extra={key: value for key, value in self.extra.items() if key not in keys},
            given=tuple(key for key in self.given if key not in keys),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class KerasClass(Section):
    """A Keras class by its registered name and its constructor's arguments: a card's `model` (`"VAE"`, or
    `"package>Class"` for a family defined elsewhere) and a recipe's `optimizer` (`"Adam"`)."""

    class_name: str
    config: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Network(Section):
    """`network`: the arguments of a `keras_ae.networks` builder; None stands for the builder's own default."""

    kind: str
    input_shape: list
    latent_dim: int
    hidden_units: list = None
    filters: list = None
    kernel_size: Any = None
    strides: int = None
    dense_units: int = None
    activation: str = None
    code_activation: str = None
    output_activation: str = None
    batch_norm: bool = None
    dropout: float = None
    kernel_regularizer: Any = None
    variational: bool = None
    spatial_code: bool = None
    scaling: str = None

    def arguments(self):
        """The builder's keyword arguments the card gives (`kind` included, as `networks.build` takes it)."""
        return self.to_json()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Data(Section):
    """`data`: what a model trains and is measured on; the data kinds (`keras_ae.kinds`) read it, nothing else does."""

    dataset: str
    train_split: str
    test_split: str
    monitor_split: str = None  # the validation data training watches and choices are made on
    validation_split: float = None
    binarize: str = None
    flatten: bool = None
    with_labels: bool = None
    only_label: Any = None
    image_size: list = None
    color_mode: str = None
    label_column: Any = None
    columns: list = None
    header: Any = None
    ratings: str = None  # "implicit" or "explicit" for a recommender's ratings
    heldout_users: float = 0.2
    split_seed: int = 0
    heldout_hash: str = None
    threshold: float = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class InitialWeights(Section):
    """`recipe.initial_weights`: the preset a fine-tuning recipe starts from, its weights pinned by sha256."""

    preset: str
    sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe(Section):
    """`recipe`: how a model trains."""

    nested: ClassVar[dict] = {"optimizer": KerasClass, "initial_weights": InitialWeights}
    epochs: int
    batch_size: int
    optimizer: KerasClass = None  # None: Adam at 1e-3
    learning_rate_schedule: str = None
    final_learning_rate_fraction: float = 0.0
    seed: int = 0
    steps_per_execution: int = 1
    early_stopping_patience: int = None
    precision: str = "auto"
    initial_weights: InitialWeights = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Weights(Section):
    """`weights`: the weights file's name, its sha256 and size in bytes, and a URL to download it from."""

    file: str
    sha256: str = None
    size: int = None
    url: str = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Anomaly(Section):
    """`anomaly`: which label is normal, which score (`keras_ae.anomaly.PRESET_SCORES`; "reconstruction+code" carries
    its fitted `code_score`), and the score threshold above which an example is called anomalous."""

    normal_label: Any = None
    score: str = "reconstruction"
    code_score: dict = None
    threshold_rule: str = "percentile"
    percentile: float = 99.0
    threshold: float = None
    threshold_source: str = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Card(Section):
    """A zoo entry or preset: what the model is, what it trains on and how, how it measured, and its weights."""

    nested: ClassVar[dict] = {"model": KerasClass, "network": Network, "data": Data, "recipe": Recipe, "weights": Weights,
                              "anomaly": Anomaly}
    name: str
    model: KerasClass
    weights: Weights
    description: str = None
    terms: str = None
    network: Network = None  # None: model.config holds the encoder and decoder whole
    data: Data = None
    recipe: Recipe = None
    evaluation: dict = dataclasses.field(default_factory=dict)
    anomaly: Anomaly = None
    training: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    subset_metrics: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, mapping, source="card", complete=True):
        """The typed card of a JSON object, validated first: a one-line `InputError` naming `source` and the field.

        `complete=False` checks the form only (`schema.check` without the network's builder), not the class against
        the registry nor its config: that needs no TensorFlow (listing, showing).

        Raises:
            InputError: `mapping` is not a valid card (its form, or with `complete`, an unregistered model class, a
                config argument or evaluation setting the class does not take), naming `source` and the field.
        """
        schema.check(mapping, source, network=complete)
        card = super().from_json(mapping)
        if complete:
            check_family(card, source)
        return card


def as_card(card, source="card"):
    """A `Card` as it is, or a card's JSON object (a dict) validated and typed by `Card.from_json`."""
    return card if isinstance(card, Card) else Card.from_json(card, source)


def as_data(spec):
    """A `Data` as it is, or a card's `data` section in its JSON form (a dict) typed."""
    return spec if isinstance(spec, Data) else Data.from_json(spec)


def model_class(card, source="card"):
    """The registered keras_ae model class a card names (`"VAE"`, or `"package>Class"` for a family defined elsewhere)."""
    import keras

    from keras_ae.models import BaseAutoencoder

    name = as_card(card, source).model.class_name
    registered = keras.saving.get_registered_object(name if ">" in name else f"keras_ae>{name}")
    if not (isinstance(registered, type) and issubclass(registered, BaseAutoencoder)):
        raise InputError(
            f"{source} names model class {name!r}, which is not a registered keras_ae model; "
            "import the module that defines it (registered with keras.saving.register_keras_serializable) first."
        )
    return registered


def task_of(card):
    """The task class of the family a card names: what the rest of keras-ae asks about the family."""
    from keras_ae.models import task_for

    return task_for(model_class(card))


def model_arguments(family):
    """The keyword arguments a model class's constructor takes: its own, its ancestors' (passed on through `**kwargs`)
    and Keras' base ones (name, trainable, dtype, ...)."""
    import inspect

    import keras

    from keras_ae.models import BaseAutoencoder

    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    arguments = set()
    for ancestor in family.__mro__:
        if not (issubclass(ancestor, BaseAutoencoder) and "__init__" in vars(ancestor)):
            continue
        parameters = list(inspect.signature(ancestor.__init__).parameters.values())[1:]  # without self
        arguments |= {parameter.name for parameter in parameters if parameter.kind in named}
        if not any(parameter.kind == inspect.Parameter.VAR_KEYWORD for parameter in parameters):
            return arguments
    base = inspect.signature(keras.layers.Layer.__init__).parameters.values()
    return arguments | {parameter.name for parameter in base if parameter.kind == inspect.Parameter.KEYWORD_ONLY}


def check_model_config(card, family, source="card"):
    """A card's `model.config` holds arguments of its class's constructor only; where a network section builds the
    encoder and decoder, not those two. Else one line naming the field and what the class takes."""
    config = card.model.config
    arguments = model_arguments(family)
    if card.network is not None:
        arguments -= {"encoder", "decoder"}
        given = [role for role in ("encoder", "decoder") if role in config]
        if given:
            raise InputError(f"{source}: model.config.{given[0]} is given, but the card's network section builds "
                             f"{family.__name__}'s encoder and decoder; drop model.config.{given[0]} (or the network section).")
    unknown = sorted(set(config) - arguments)
    if unknown:
        raise InputError(f"{source}: model.config.{unknown[0]} is not an argument of {family.__name__}; it takes "
                         f"{sorted(arguments)}.")


def check_family(card, source="card"):
    """The checks a schema cannot make: the class is registered, its config and evaluation settings are its own."""
    family = model_class(card, source)
    check_model_config(card, family, source)
    settings = task_of(card).evaluation_defaults
    unknown = set(card.evaluation) - set(settings) - {"linear_probe"}
    if unknown:
        raise InputError(
            f"{source}: evaluation settings {sorted(unknown)} are not {family.__name__}'s; "
            f"it takes {sorted(settings) + ['linear_probe']}."
        )
