"""Screens for `recommend_benchmark.py`'s choices, on the validation users of its splits only (no test user is read).

    KERAS_AE_DATA=../shared/data python scripts/recommend_screen.py dae --dropout 0.1 --latent 600 --members 3 --epochs 250
    KERAS_AE_DATA=../shared/data python scripts/recommend_screen.py recvae --epochs 130

`dae`: a Mult-DAE without hidden layer (code `--latent`, input dropout `--dropout`), Adam 1e-3, batches of 100,
validation NDCG@100 every 5 epochs; with `--members` > 1, also of the mean softmax of that many models (seeds s,
s + 1000, ...). `recvae`: RecVAE as `recommend_benchmark.recvae_model` builds it (width 200), validation NDCG@100 every 10 epochs.
Prints one JSON line per split seed (the curve and its best) and the mean of the bests over the split seeds. The
layers are seeded, so the numbers are not those of the benchmark's own Mult-DAE.
"""

import argparse
import json

import keras
import numpy as np

import keras_ae
from keras_ae import networks, ratings
import recommend_benchmark


def softmax(scores):
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mult_dae(items, seed, dropout, latent):
    keras.utils.set_random_seed(seed)
    encoder, decoder = networks.dense((items,), latent, hidden_units=(), activation="tanh", output_activation="linear", seed=seed)
    model = keras_ae.MultDAE(encoder, decoder, input_dropout=dropout, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def curves(build, members, split, seed, epochs, every):
    """Validation NDCG@100 every `every` epochs of the first model alone and of the mean softmax of `members` models,
    each built by `build(seed)` and trained in turn (seeds `seed`, `seed` + 1000, ...)."""
    validation = split.validation_fold_in.toarray()
    ndcg = lambda scores: recommend_benchmark.ranking_metrics(scores, split.validation_fold_in, split.validation_held_out)["ndcg@100"]  # noqa: E731
    checkpoints = []  # per member, its softmax scores at every check
    for member in range(members):
        member_seed = seed + 1000 * member
        model, scores = build(member_seed), []
        for _ in range(every, epochs + 1, every):
            model.fit(ratings.batches(split.train, 100, shuffle=True, seed=member_seed), epochs=every, verbose=0)
            scores.append(softmax(model.predict(validation, verbose=0)))
        checkpoints.append(scores)
    single = [round(ndcg(scores), 4) for scores in checkpoints[0]]
    mean = [round(ndcg(np.mean(at_check, axis=0)), 4) for at_check in zip(*checkpoints)]
    return single, mean


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("dae", "recvae"))
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1], help="split seeds (validation users only)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--dropout", type=float, default=0.5, help="dae: input dropout")
    parser.add_argument("--latent", type=int, default=200, help="dae: code size")
    parser.add_argument("--members", type=int, default=1, help="dae: models averaged (softmax)")
    args = parser.parse_args(argv)
    all_ratings = ratings.read_ratings("ml-latest-small")
    bests = {"single": [], "mean of members": []}
    for seed in args.splits:
        split = ratings.split_strong_generalization(all_ratings, seed=seed)
        items = split.train.shape[1]
        if args.model == "dae":
            single, mean = curves(lambda seed: mult_dae(items, seed, args.dropout, args.latent), args.members, split, seed, args.epochs, every := 5)
        else:
            single, mean = curves(lambda seed: recommend_benchmark.recvae_model(items, seed, 200), 1, split, seed, args.epochs, every := 10)
        bests["single"].append(max(single))
        bests["mean of members"].append(max(mean))
        print(json.dumps({"split": seed, "every": every, "single": single, "best single": max(single),
                          "best epoch": every * (1 + int(np.argmax(single))), "mean of members": mean}), flush=True)
    print(json.dumps({"arguments": vars(args), **{key: round(float(np.mean(values)), 4) for key, values in bests.items()}}))


if __name__ == "__main__":
    main()
