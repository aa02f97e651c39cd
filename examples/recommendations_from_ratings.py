"""Recommendations from ratings: train a Mult-VAE on MovieLens, measure it the way Liang et al. do, recommend.

MovieLens ml-latest-small is research-use only and not bundled: `KERAS_AE_DATA` must hold `ml-latest-small/`.
`KERAS_AE_TUTORIAL_TINY=1` shrinks the training to seconds.
"""

import os

import keras_ae

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"

# 1. The zoo's recipe, as a card: Liang et al.'s split (held-out users, 80% of their positives as history).
card = keras_ae.model_card("multvae_ml_latest_small")
card["recipe"]["epochs"] = 3 if TINY else card["recipe"]["epochs"]

# 2. Train it through the one training path, and measure it on the test users (ranking held-out items).
model, history, stats = keras_ae.train(card, verbose=0)
metrics = keras_ae.evaluate.measure(card, model)
print(f"NDCG@100 {metrics['ndcg@100']:.3f} on {metrics['test_examples']} test users ({stats['epochs']} epochs)")

# 3. Recommend for a new user from their history (the dataset's own movie ids).
item_ids, scores = model.recommend([[1, 260, 1196]], k=5)
print("recommended movie ids:", item_ids[0].tolist())
