"""``exfil-detector evaluate``: the detector and five baselines scored on labelled logs.

| module | what it does |
|---|---|
| ``inputs`` | the logs directory a simulation writes (labels, users, run, config), checked |
| ``statements`` | the logs parsed and enriched once more into the statement frame baselines read |
| ``detections`` | the common :class:`Detection` record; our alerts and alert files as detections |
| ``matching`` | the scoring rules (caught, delay, false alerts per 100 active user-days) |
| ``results`` | the frozen results and their JSON form |
| ``baselines/`` | DAM statement and hourly policies, per-user 3-sigma, IsolationForest, Sentinel |
| ``targets`` | the issue's targets checked against a result |
| ``report`` | the printed table, the JSON file, the Markdown rendering |

``detector.lab.evaluation.evaluate.run_evaluate`` wires them.
"""
