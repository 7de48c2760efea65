"""The peers of bench/fairness: Fairlearn's MetricFrame (and its bootstrap) and a NumPy
bincount of the same group metrics (the practical ceiling), on the bytes Candor reads.

usage: peers.py DIR RUNS NUMPY_RUNS BOOT
  DIR holds y_true.u8, y_pred.u8, a.u8, b.u8 (one byte per row: 0/1 labels, group codes).
  RUNS / NUMPY_RUNS: timed runs of each Fairlearn / NumPy case (median reported); BOOT: Fairlearn bootstrap resamples to time
  (0 = skip). Prints one JSON object.
"""
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
import fairlearn
from fairlearn.metrics import (MetricFrame, selection_rate, true_positive_rate,
                               false_positive_rate)
from sklearn.metrics import accuracy_score

d, runs, np_runs, boot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
load = lambda name: np.fromfile(f"{d}/{name}.u8", dtype=np.uint8)
yt, yp, a, b = load("y_true"), load("y_pred"), load("a"), load("b")
METRICS = {"selection_rate": selection_rate, "tpr": true_positive_rate,
           "fpr": false_positive_rate, "accuracy": accuracy_score}


def timed(f, runs=runs):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def metricframe(sf):
    mf = MetricFrame(metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=sf)
    groups = {}
    for idx, row in mf.by_group.iterrows():
        key = str(idx) if not isinstance(idx, tuple) else " & ".join(str(i) for i in idx)
        groups[key] = {k: float(v) for k, v in row.items()}
    return groups


def bincount(g, ng):
    c = np.bincount(g.astype(np.int64) * 4 + yt * 2 + yp, minlength=ng * 4).reshape(ng, 4)
    tn, fp, fn, tp = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    n = c.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((tp + fp) / n, tp / (tp + fn), fp / (fp + tn), (tp + tn) / n)


na, nb = int(a.max()) + 1, int(b.max()) + 1
out = {"versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                    "pandas": pd.__version__, "fairlearn": fairlearn.__version__},
       "rows": int(len(yt))}
secs, groups = timed(lambda: metricframe(a))
out["fairlearn_one"] = {"secs": secs, "groups": groups}
secs, groups = timed(lambda: metricframe(pd.DataFrame({"a": a, "b": b})))
out["fairlearn_two"] = {"secs": secs, "groups": groups}
out["bincount_one"] = {"secs": timed(lambda: bincount(a, na), np_runs)[0]}
out["bincount_two"] = {"secs": timed(lambda: bincount(a.astype(np.int64) * nb + b, na * nb),
                                     np_runs)[0]}
if boot > 0:
    t = time.perf_counter()
    MetricFrame(metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=a, n_boot=boot,
                ci_quantiles=[0.025, 0.975], random_state=0)
    total = time.perf_counter() - t
    base = out["fairlearn_one"]["secs"]
    out["fairlearn_bootstrap"] = {"resamples": boot, "secs": total,
                                  "secs_per_resample": max(total - base, 0.0) / boot}
print(json.dumps(out))
