"""Per-example likelihood and divergence terms as pure `keras.ops` functions.

Every function returns one float32 value per example (shape `[batch]`), so the
models can weight, average and scale them the same way.
"""

import math

from keras import ops

LOG_VARIANCE_LIMIT = 20.0  # exp(20) ~ 5e8: wide enough for any sane posterior, far from overflow.


def _flatten_per_example(x):
    return ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], -1))


def mean_squared_error(x, x_hat):
    """Mean over data dimensions of the squared error."""
    return ops.mean(ops.square(_flatten_per_example(x) - _flatten_per_example(x_hat)), axis=-1)


def binary_crossentropy(x, probabilities):
    """Mean over data dimensions of the cross-entropy of `x` under pixel probabilities."""
    return ops.mean(
        ops.binary_crossentropy(_flatten_per_example(x), _flatten_per_example(probabilities)),
        axis=-1,
    )


def bernoulli_negative_log_likelihood(x, logits):
    """-log p(x | logits) summed over data dimensions, in nats."""
    return ops.sum(
        ops.binary_crossentropy(_flatten_per_example(x), _flatten_per_example(logits), from_logits=True),
        axis=-1,
    )


def gaussian_negative_log_likelihood(x, mean, scale=1.0):
    """-log N(x; mean, scale^2) summed over data dimensions, in nats."""
    squared = ops.square(_flatten_per_example(x) - _flatten_per_example(mean))
    dimensions = ops.cast(ops.shape(squared)[-1], "float32")
    return 0.5 * ops.sum(squared, axis=-1) / scale**2 + dimensions * (math.log(scale) + 0.5 * math.log(2 * math.pi))


def clamp_log_variance(z_log_var):
    """Keep a log-variance where `exp` cannot overflow, even in float16."""
    return ops.clip(ops.cast(z_log_var, "float32"), -LOG_VARIANCE_LIMIT, LOG_VARIANCE_LIMIT)


def gaussian_kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) summed over latent dimensions (of a vector or a feature-map code)."""
    z_mean = _flatten_per_example(z_mean)
    z_log_var = clamp_log_variance(_flatten_per_example(z_log_var))
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, exp(log_var)) summed over all but the batch axis."""
    z = _flatten_per_example(z)
    mean = _flatten_per_example(mean)
    log_var = clamp_log_variance(_flatten_per_example(log_var))
    return -0.5 * ops.sum(
        math.log(2 * math.pi) + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1
    )


def gaussian_mixture_log_density(z, components, weights):
    """log sum_k weights[k] N(z_d; mean_k, exp(log_var_k)) per latent dimension d, summed over dimensions: a mixture
    taken dimension by dimension, as RecVAE's composite prior is. `components` is [(mean, log_var)], each of z's shape
    (or broadcasting to it)."""
    z = ops.cast(z, "float32")
    per_component = [
        math.log(weight) - 0.5 * (math.log(2 * math.pi) + clamp_log_variance(log_var)
                                  + ops.square(z - ops.cast(mean, "float32")) * ops.exp(-clamp_log_variance(log_var)))
        for (mean, log_var), weight in zip(components, weights)
    ]
    return ops.sum(ops.logsumexp(ops.stack(per_component, axis=-1), axis=-1), axis=-1)


def bernoulli_kl_divergence(target, mean_activation, epsilon=1e-7):
    """Sum over units of KL(Bernoulli(target) || Bernoulli(mean_activation))."""
    rho_hat = ops.clip(ops.cast(mean_activation, "float32"), epsilon, 1.0 - epsilon)
    return ops.sum(
        target * ops.log(target / rho_hat) + (1.0 - target) * ops.log((1.0 - target) / (1.0 - rho_hat)),
        axis=-1,
    )
