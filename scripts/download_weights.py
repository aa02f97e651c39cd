"""Fill or check the weight cache ($KERAS_AE_HOME) for zoo entries, for machines that will later run offline.

    python scripts/download_weights.py --all                    # cache every entry
    python scripts/download_weights.py vae_mnist --mirror http://host/zoo
    python scripts/download_weights.py --all --verify           # check what is cached
"""

import sys

from keras_ae import cli

if __name__ == "__main__":
    sys.exit(cli.main(["download", *sys.argv[1:]]))
