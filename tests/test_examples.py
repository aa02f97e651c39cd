"""Every tutorial in examples/ runs, on tiny settings, so none can rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
SAYS = {  # what each story prints when it has run to its end
    "anomaly_detection_on_your_csv": "of the abnormal beats",
    "vae_from_scratch": "reloaded",
    "fine_tune_a_zoo_entry": "codes (60, 32)",
    "recommendations_from_ratings": "recommended movie ids",
    "denoise_scanned_digits": "picture written to",
    "compress_images_with_vqvae": "JPEG quality",
    "score_with_beam": "rows scored on Beam",
}


def test_every_tutorial_is_tested():
    assert sorted(path.stem for path in EXAMPLES) == sorted(SAYS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_the_tutorial_runs_to_its_end(path, data_root):
    environment = {**os.environ, "KERAS_AE_TUTORIAL_TINY": "1", "KERAS_AE_DATA": str(Path(data_root).resolve()),
                   "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SAYS[path.stem] in result.stdout, result.stdout[-2000:]
