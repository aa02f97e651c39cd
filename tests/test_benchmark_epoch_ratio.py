"""scripts/benchmark.py's section 9 on a small slice: fresh two-epoch trainings each way, in pairs of alternating order."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark  # noqa: E402


def test_epoch_ratio_times_both_ways_and_reports_their_ratio(data_root, tmp_path, capsys):
    output = tmp_path / "epoch_ratio.json"
    benchmark.main(["--quick", "--epoch-ratio", "--output", str(output)])
    results = json.loads(output.read_text())
    assert set(results) == {"metadata", "epoch_ratio"}  # only section 9 ran
    ratio = results["epoch_ratio"]
    assert (ratio["epochs"], ratio["examples"], len(ratio["pairs"])) == (2, benchmark.QUICK.ratio_examples, 1)
    pair = ratio["pairs"][0]
    assert pair["keras_io_way"] > 0 and pair["keras_ae"] > 0
    assert pair["speedup"] == ratio["median_speedup"] == pair["keras_io_way"] / pair["keras_ae"]
    assert ratio["keras_ae_precision"] in ("float32", "mixed_bfloat16")
    assert "9. Fresh vae_mnist trainings of 2 epochs" in capsys.readouterr().out
