"""Recommendation on MovieLens: Mult-VAE, Mult-DAE, RecVAE and AutoRec against popularity, EASE and matrix factorization, one run.

    KERAS_AE_DATA=../shared/data python scripts/recommend_benchmark.py --seeds 5 --jobs 3   # writes benchmarks/recommend.json

Liang et al. 2018's protocol on ml-latest-small: held-out users (20%, half validation, half test) unseen in
training, 80% of each one's positives (ratings >= 3.5) as fold-in history, 20% to predict; Recall@20, Recall@50
and NDCG@100 over the test users (fold-in items excluded from the ranking). The autoencoders are built and trained
as the zoo cards `multvae_ml_latest_small` / `autorec_ml_latest_small` say (Mult-DAE: the Mult-VAE card's sizes and
input dropout, no KL); RecVAE (Shenbin et al. 2020) as its paper trains it, see `recvae`. EASE's l2, biased MF's l2 and
epochs, the autoencoders' epoch and RecVAE's encoder width are chosen on the validation users. A second Mult-DAE has
input dropout 0.1, the best of a screen on the validation users of splits 0 and 1 alone (`recommend_screen.py`; its
numbers are in docs/applications.md). RMSE on the held-out ratings of the same held-out users (their other ratings
folded into training) for the global mean, biased matrix factorization and item-based AutoRec. Seeds 0..N-1 each give
a split and the initialisations; `--jobs` runs that many seeds at once, each in its own process (the numbers are the
same).
"""

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import keras
import numpy as np

import keras_ae
from keras_ae import cards, evaluate, networks, ratings, weights
import recommend_baselines as baselines

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "recommend.json"
RANKING_RESULTS = RESULTS.with_name("recommend_ranking.json")  # with --ranking-only
RANKING = {"recall@20": (evaluate.recall_at_k, 20), "recall@50": (evaluate.recall_at_k, 50), "ndcg@100": (evaluate.ndcg_at_k, 100)}


def ranking_metrics(scores, fold_in, held_out):
    return {name: float(metric(np.asarray(scores, "float64"), held_out, k, exclude=fold_in).mean()) for name, (metric, k) in RANKING.items()}


TUNED_DAE_DROPOUT = 0.1  # the second Mult-DAE's input dropout, chosen on validation users (see the docstring)
AUTOENCODERS = ("Mult-DAE", f"Mult-DAE, dropout {TUNED_DAE_DROPOUT}", "Mult-VAE", "RecVAE")
RECVAE_EPOCHS = 30
RECVAE_WIDTHS = (200,)  # chosen over the paper's 600 on the validation users of split 0 (NDCG@100 0.373 vs 0.363)
MF_GRID = [{"l2": l2, "epochs": epochs} for l2 in (0.05, 0.1, 0.2) for epochs in (20, 40, 80)]


def from_card(name, seed, input_size, **network):
    """A fresh model as the zoo card `name` builds it, for this split's size, seeded; and the card's recipe."""
    card = cards.model_card(name)
    keras.utils.set_random_seed(seed)
    card = {**card, "network": {**card["network"], "input_shape": [input_size], **network},
            "model": {**card["model"], "config": {**card["model"]["config"], "seed": seed}}}
    if "items" in card["model"]["config"]:
        card["model"]["config"]["items"] = 0
    return cards.build_model(card), card["recipe"]


def best_on_validation(model, split, seed, epochs, batch_size, check_every=5):
    """Train `model` up to `epochs`, checking every `check_every`; keep the epoch best on validation NDCG@100."""
    best = (-1.0, None, 0)
    for epoch in range(check_every, epochs + 1, check_every):
        model.fit(ratings.batches(split.train, batch_size, shuffle=True, seed=seed), epochs=check_every, verbose=0)
        validation = ranking_metrics(model.predict(split.validation_fold_in.toarray(), verbose=0),
                                     split.validation_fold_in, split.validation_held_out)["ndcg@100"]
        if validation > best[0]:
            best = (validation, model.get_weights(), epoch)
    model.set_weights(best[1])
    return model, {"epochs": best[2], "validation_ndcg@100": best[0]}


def autoencoder(family, split, seed, epochs, input_dropout=None):
    """Train Mult-DAE or Mult-VAE as the Mult-VAE card says (Mult-DAE: with `input_dropout` if given); keep the epoch
    best on validation NDCG@100."""
    items = split.train.shape[1]
    if family == "Mult-VAE":
        model, recipe = from_card("multvae_ml_latest_small", seed, items)
    else:
        card = cards.model_card("multvae_ml_latest_small")
        recipe = card["recipe"]
        keras.utils.set_random_seed(seed)
        network = {**card["network"], "input_shape": [items], "variational": False, "output_activation": "linear"}
        dropout = card["model"]["config"]["input_dropout"] if input_dropout is None else input_dropout
        model = keras_ae.MultDAE(*networks.build(**network), input_dropout=dropout, seed=seed)
    model.compile(optimizer=keras.optimizers.deserialize(recipe["optimizer"]))
    return best_on_validation(model, split, seed, epochs, recipe["batch_size"])


def recvae_model(items, seed, width):
    """A compiled RecVAE as the paper builds it, with an encoder of 5 summed dense layers of `width`, seeded."""
    keras.utils.set_random_seed(seed)
    encoder, decoder = networks.summed_dense((items,), 200, hidden_units=(width,) * 5, variational=True,
                                             output_activation="linear", seed=seed)
    model = keras_ae.RecVAE(encoder, decoder, gamma=0.005, encoder_updates=3, input_dropout=0.5, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(5e-4))
    return model


def recvae(split, seed, epochs, widths):
    """RecVAE as the paper trains it (code 200, swish, layer norm, input dropout 0.5, gamma 0.005, 3 encoder updates per
    decoder update, Adam 5e-4; batches of 100 here, for 487 training users): for each encoder width of `widths` (5 summed
    dense layers of it), trained up to `epochs`, the width and epoch with the best validation NDCG@100 kept."""
    best = None
    for width in widths:
        model, chosen = best_on_validation(recvae_model(split.train.shape[1], seed, width), split, seed, epochs, batch_size=100)
        if best is None or chosen["validation_ndcg@100"] > best[1]["validation_ndcg@100"]:
            best = (model, {"width": width, **chosen})
    return best


def ranking(split, seed, epochs, recvae_epochs, recvae_widths):
    results = {"popularity": ranking_metrics(baselines.popularity_scores(split.train, split.test_fold_in), split.test_fold_in, split.test_held_out)}
    l2, by_l2 = baselines.choose_ease_l2(split.train, split.validation_fold_in, split.validation_held_out, grid=(100, 200, 500, 1000))
    ease = baselines.ease_scores(baselines.fit_ease(split.train, l2), split.test_fold_in)
    results["EASE"] = {**ranking_metrics(ease, split.test_fold_in, split.test_held_out), "l2": l2}
    for family in AUTOENCODERS:
        start = time.perf_counter()
        if family == "RecVAE":
            model, chosen = recvae(split, seed, recvae_epochs, recvae_widths)
        else:
            model, chosen = autoencoder(family, split, seed, epochs, TUNED_DAE_DROPOUT if family == AUTOENCODERS[1] else None)
        scores = model.predict(split.test_fold_in.toarray(), verbose=0)
        results[family] = {**ranking_metrics(scores, split.test_fold_in, split.test_held_out), **chosen,
                           "seconds": round(time.perf_counter() - start, 1)}
    return results


def rating_prediction(all_ratings, split, seed, epochs):
    explicit = ratings.explicit_split(all_ratings, split, seed=seed)
    train = explicit.train.tocoo()
    users, items, actual = (np.asarray(part) for part in explicit.test)
    mean = baselines.global_mean(train.data)
    fits = [baselines.fit_biased_mf(train.row, train.col, train.data, *explicit.train.shape, seed=seed, **options) for options in MF_GRID]
    chosen = int(np.argmin([evaluate.rmse(baselines.predict_biased_mf(fit, *explicit.validation[:2]), explicit.validation[2]) for fit in fits]))
    factorization = fits[chosen]
    autorec, recipe = from_card("autorec_ml_latest_small", seed, explicit.train.shape[0])
    autorec.compile(optimizer=keras.optimizers.deserialize(recipe["optimizer"]))
    best = (np.inf, None)
    for _ in range(0, epochs or recipe["epochs"], 2):  # keep the epoch best on the validation users' held-out ratings
        autorec.fit(ratings.batches(explicit.train.T.tocsr(), recipe["batch_size"], shuffle=True, seed=seed), epochs=2, verbose=0)
        validation = evaluate.rmse(autorec.predict_ratings(explicit.train, *explicit.validation[:2]), explicit.validation[2])
        if validation < best[0]:
            best = (validation, autorec.get_weights())
    autorec.set_weights(best[1])
    return {
        "global mean": evaluate.rmse(np.full(len(actual), mean), actual),
        "biased MF": evaluate.rmse(baselines.predict_biased_mf(factorization, users, items), actual),
        "AutoRec": evaluate.rmse(autorec.predict_ratings(explicit.train, users, items), actual),
    }, MF_GRID[chosen]


def summarize(runs):
    """Mean and standard deviation over the seeds of every model's numbers."""
    collected = {}
    for run in runs:
        for model, metrics in run["ranking"].items():
            for key in RANKING:
                collected.setdefault(model, {}).setdefault(key, []).append(metrics[key])
        for model, value in run.get("rmse", {}).items():
            collected.setdefault(model, {}).setdefault("rmse", []).append(value)
    return {
        model: {key: {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
                for key, values in metrics.items()}
        for model, metrics in collected.items()
    }


def one_seed(seed, args):
    """Every method on the split of `seed`, initialised with `seed`: the run's record."""
    all_ratings = ratings.read_ratings("ml-latest-small")
    split = ratings.split_strong_generalization(all_ratings, seed=seed)
    run = {"seed": seed, "heldout_hash": split.heldout_hash,
           "ranking": ranking(split, seed, args.epochs, args.recvae_epochs, args.recvae_widths)}
    if not args.ranking_only:
        run["rmse"], run["biased_mf_options"] = rating_prediction(all_ratings, split, seed, args.autorec_epochs)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="splits and initialisations 0..N-1")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process")
    parser.add_argument("--epochs", type=int, default=300, help="most epochs for Mult-DAE/Mult-VAE (best on validation kept)")
    parser.add_argument("--recvae-epochs", type=int, default=RECVAE_EPOCHS, help="most epochs for RecVAE (best on validation kept)")
    parser.add_argument("--recvae-widths", type=int, nargs="+", default=RECVAE_WIDTHS,
                        help="RecVAE encoder widths to choose from on the validation users")
    parser.add_argument("--ranking-only", action="store_true", help=f"leave rating prediction out; write {RANKING_RESULTS.name}")
    parser.add_argument("--autorec-epochs", type=int, help="most epochs for AutoRec (best on validation kept; default: its card's)")
    args = parser.parse_args(argv)
    runs = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for run in pool.map(one_seed, range(args.seeds), [args] * args.seeds):
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = summarize(runs)
    wins = {family: sum(run["ranking"][family]["ndcg@100"] > run["ranking"]["EASE"]["ndcg@100"] for run in runs) for family in AUTOENCODERS}
    command = " ".join(sys.argv[1:] if argv is None else argv)
    results = {"runs": runs, "summary": summary, "seeds above EASE (NDCG@100)": {**wins, "of": len(runs)},
               "command": f"KERAS_AE_DATA=../shared/data python scripts/recommend_benchmark.py {command}"}
    written = RANKING_RESULTS if args.ranking_only else RESULTS
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(json.dumps(results, indent=2) + "\n"), written)
    for name, metrics in summary.items():
        print(f"| {name:<22} | " + " | ".join(f"{key} {value['mean']:.4f} ± {value['std']:.4f}" for key, value in metrics.items()) + " |")
    print(f"NDCG@100 above EASE's, seeds of {len(runs)}: {wins}")


if __name__ == "__main__":
    main()
