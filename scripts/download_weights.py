"""Fill or check the weight cache ($KERAS_AE_HOME) for zoo entries, for machines that will later run offline.

    python scripts/download_weights.py --all                    # cache every entry
    python scripts/download_weights.py vae_mnist --mirror http://host/zoo
    python scripts/download_weights.py --all --verify           # check what is cached
"""

import argparse
import shutil
import sys

from keras_ae import cards, weights


def fill(name, mirror=None):
    """Cache one entry's weights: a verified copy of the bundled file, else a verified download."""
    card = cards.model_card(name)
    file_name = weights.check_file_name(card["weights"]["file"])
    cached = weights.cache_dir() / name / file_name
    bundled = weights.ZOO_DIR / name / file_name
    if cached.exists():
        weights.verify(cached, card["weights"]["sha256"])
        return f"{name}: already cached at {cached}"
    if bundled.exists() and not mirror:
        weights.verify(bundled, card["weights"]["sha256"])
        weights.atomic_copy(lambda temporary: shutil.copyfile(bundled, temporary), cached)
        return f"{name}: copied the bundled weights to {cached}"
    path = weights.resolve(card, mirror=mirror, progress=True)
    return f"{name}: downloaded to {path}"


def check(name):
    card = cards.model_card(name)
    cached = weights.cache_dir() / name / weights.check_file_name(card["weights"]["file"])
    if not cached.exists():
        return False, f"{name}: MISSING {cached}"
    actual = weights.sha256(cached)
    if actual != card["weights"]["sha256"]:
        return False, f"{name}: BAD {cached} sha256 {actual}, expected {card['weights']['sha256']}"
    return True, f"{name}: OK {cached}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries")
    parser.add_argument("--all", action="store_true", help="every zoo entry")
    parser.add_argument("--mirror", help="base URL holding <name>/<file>; downloads even when a bundled copy exists")
    parser.add_argument("--verify", action="store_true", help="only check the cache against the cards' sha256")
    args = parser.parse_args(argv)
    names = cards.list_models() if args.all else args.names
    if not names:
        parser.error("name at least one zoo entry, or pass --all")
    failures = 0
    for name in names:
        try:
            if args.verify:
                ok, message = check(name)
            else:
                ok, message = True, fill(name, args.mirror)
        except (OSError, ValueError) as error:
            ok, message = False, f"{name}: FAILED {error}"
        failures += not ok
        print(message, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
