"""The usage contract and its ingestion: the bottom package every other one (forecasting, optimizer, operate, app)
sits on.

- :mod:`usage.schema`: the canonical hourly usage frame (``timestamp, team, gpu_type, gpus`` and the optional
  columns), its validation with one-line errors, the long format (``unique_id, ds, y``) and the forecast contract's
  column names;
- :mod:`usage.io`: reading text files (encodings) and writing outputs atomically and spreadsheet-safe;
- :mod:`usage.ingest`: billing exports (FOCUS, AWS CUR, GCP, Azure, Cost Explorer) and canonical files to that
  frame, and the storage and transfer lines (:mod:`usage.ingest.data_lines`).

It imports nothing of the project above it. Units: GPUs in use averaged over an hour (= GPU-hours per hour);
timestamps are UTC hour starts.
"""
