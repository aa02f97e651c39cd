"""Score a CSV too large for one machine on Apache Beam: export a detector, then run its `anomaly_score` in RunInference.

This story scores ECG5000 heartbeats (TensorFlow's tutorial file `ecg.csv`) given an id column, with `ae_ecg5000`. It
runs on Beam's DirectRunner; the same pipeline runs on Dataflow, Flink or Spark given their pipeline options, e.g.
`python examples/score_with_beam.py --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`, with
the input, the export and the output on storage every worker reads (gs://...). Needs `pip install 'keras-ae[beam]'`;
`KERAS_AE_TUTORIAL_TINY=1` shrinks it to seconds (the tests run it so).
"""

import os
import sys
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

import keras_ae
from keras_ae.beam import SavedModelHandler

TINY = os.environ.get("KERAS_AE_TUTORIAL_TINY") == "1"
work = Path(tempfile.mkdtemp(prefix="beam_tutorial_"))

# 1. Your table: one row per beat, an id, then 140 readings (here 5,000 beats of ECG5000; their label is kept aside).
beats = np.loadtxt(Path(os.environ["KERAS_AE_DATA"]) / "ecg5000" / "ecg.csv", delimiter=",")[: 1000 if TINY else None]
table = work / "beats.csv"
table.write_text("id," + ",".join(f"t{index}" for index in range(140)) + "\n"
                 + "".join(f"beat{row}," + ",".join(f"{value:.6g}" for value in beat[:140]) + "\n" for row, beat in enumerate(beats)))

# 2. Export the detector as a SavedModel: the workers need TensorFlow, not keras_ae.
model = keras_ae.load("ae_ecg5000")
keras_ae.export(model, work / "served")
threshold = keras_ae.model_card("ae_ecg5000")["anomaly"]["threshold"]


def parse(line):
    """A CSV line as (id, float32 readings)."""
    key, *values = line.split(",")
    return key, np.array(values, dtype=np.float32)


# 3. The pipeline: read lines, key each row by its id, score in batches of up to 1,000, write "id,score,flag" lines.
with beam.Pipeline(options=PipelineOptions(sys.argv[1:])) as pipeline:
    (pipeline
     | "Read" >> beam.io.ReadFromText(str(table), skip_header_lines=1)
     | "Parse" >> beam.Map(parse)
     | "Score" >> RunInference(KeyedModelHandler(SavedModelHandler(work / "served", signature="anomaly_score",
                                                                   max_batch_size=1000)))
     | "Format" >> beam.MapTuple(lambda key, result: f"{key},{result.inference:.6g},{int(result.inference > threshold)}")
     | "Write" >> beam.io.WriteToText(str(work / "scores"), file_name_suffix=".csv", header="id,score,anomaly"))

# 4. The scores come back in no particular order (Beam's shards); key them by id and check them against the model.
written = {}
for shard in sorted(work.glob("scores*.csv")):
    for line in shard.read_text().splitlines()[1:]:
        key, score, _ = line.split(",")
        written[int(key.removeprefix("beat"))] = float(score)
scores = np.array([written[row] for row in range(len(beats))])
largest_gap = np.max(np.abs(scores - np.asarray(model.anomaly_score(beats[:, :140].astype("float32")))))
flagged = scores > threshold
print(f"{len(scores):,} rows scored on Beam (largest gap to the Keras model's own scores: {largest_gap:.1e}); "
      f"flagged {flagged[beats[:, 140] == 0].mean():.0%} of the abnormal beats and {flagged[beats[:, 140] == 1].mean():.0%} "
      f"of the normal ones; scores in {work}")
