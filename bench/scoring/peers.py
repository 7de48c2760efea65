"""Peer side of bench/scoring: LightGBM, XGBoost and shap, driven by the Rust binary.

Usage: python peers.py serve DATA_DIR

A worker that reads one JSON request per line on stdin and answers one JSON line on the
original stdout (anything the libraries print goes to stderr). The Rust side decides what to
measure and in which order, so that Candor's runs and the peers' runs interleave and see the
same machine conditions. Every timing covers one call only (data already in memory); a
request with "min_secs": S repeats the call back to back until S seconds have passed (at least
once) and returns seconds per call.

DATA_DIR/<dataset>/ holds what the Rust side wrote: meta.json and little-endian float64 files
train_x.f64 / test_x.f64 (row-major, n_features per row) and train_y.f64 / test_y.f64.
"""

import json
import os
import sys
import time
import warnings

# Keep the protocol channel clean: the real stdout is for answers, fd 1 goes to stderr.
_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import numpy as np  # noqa: E402
import lightgbm as lgb  # noqa: E402
import xgboost as xgb  # noqa: E402
import shap  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

warnings.filterwarnings("ignore", message=".*LightGBM binary classifier.*")


class Data:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "meta.json")) as f:
            self.meta = json.load(f)
        nf = self.meta["n_features"]
        self.nf = nf
        self.train_x = self._read("train_x.f64").reshape(-1, nf)
        self.train_y = self._read("train_y.f64")
        self.test_x = self._read("test_x.f64").reshape(-1, nf)
        self.test_y = self._read("test_y.f64")
        self.categorical = list(self.meta["categorical"])
        self.params = self.meta["params"]
        self.models = {}

    def _read(self, name):
        return np.fromfile(os.path.join(self.path, name), dtype="<f8")

    def lgb_params(self):
        p = self.params
        return {
            "objective": "binary",
            "num_leaves": p["num_leaves"],
            "learning_rate": p["learning_rate"],
            "max_bin": p["max_bin"],
            "min_data_in_leaf": p["min_data_in_leaf"],
            "min_sum_hessian_in_leaf": p["min_sum_hessian_in_leaf"],
            "lambda_l2": p["lambda_l2"],
            "num_threads": p["threads"],
            "seed": p["seed"],
            "verbose": -1,
        }

    def xgb_params(self):
        p = self.params
        return {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "grow_policy": "lossguide",
            "max_leaves": p["num_leaves"],
            "max_depth": 0,
            "eta": p["learning_rate"],
            "max_bin": p["max_bin"],
            "nthread": p["threads"],
            "seed": p["seed"],
            # XGBoost has no min_data_in_leaf; lambda and min_child_weight keep its defaults (1).
        }

    def feature_types(self):
        cats = set(self.categorical)
        return ["c" if i in cats else "q" for i in range(self.nf)]

    def model_path(self, lib):
        return os.path.join(self.path, "lightgbm.txt" if lib == "lightgbm" else "xgboost.json")


DATA = {}


def data(req):
    name = req["data"]
    if name not in DATA:
        DATA[name] = Data(os.path.join(sys.argv[2], name))
    return DATA[name]


def train(req):
    d = data(req)
    lib = req["lib"]
    trees = req.get("trees", d.params["num_trees"])
    if lib == "lightgbm":
        t = time.perf_counter()
        ds = lgb.Dataset(
            d.train_x, d.train_y, categorical_feature=d.categorical or "auto", free_raw_data=False
        )
        booster = lgb.train(d.lgb_params(), ds, num_boost_round=trees)
        secs = time.perf_counter() - t
        raw = booster.predict(d.test_x, raw_score=True, num_threads=d.params["threads"])
        n_trees = booster.num_trees()
    elif lib == "xgboost":
        t = time.perf_counter()
        dm = xgb.QuantileDMatrix(
            d.train_x,
            d.train_y,
            max_bin=d.params["max_bin"],
            feature_types=d.feature_types(),
            enable_categorical=bool(d.categorical),
            nthread=d.params["threads"],
        )
        booster = xgb.train(d.xgb_params(), dm, num_boost_round=trees)
        secs = time.perf_counter() - t
        raw = booster.inplace_predict(d.test_x, predict_type="margin")
        n_trees = booster.num_boosted_rounds()
    else:
        raise ValueError(f"unknown library {lib}")
    if req.get("keep"):
        d.models[lib] = booster
    return {"seconds": secs, "auc": float(roc_auc_score(d.test_y, raw)), "trees": n_trees}


def save(req):
    """Writes the kept models and reloads them from the files, so every later measurement
    (and Candor's import) uses exactly the saved trees."""
    d = data(req)
    lb = d.models["lightgbm"]
    lb.save_model(d.model_path("lightgbm"))
    xb = d.models["xgboost"]
    xb.save_model(d.model_path("xgboost"))
    lb = lgb.Booster(model_file=d.model_path("lightgbm"))
    xb = xgb.Booster(model_file=d.model_path("xgboost"))
    xb.set_param({"nthread": d.params["threads"]})
    d.models = {"lightgbm": lb, "xgboost": xb}
    raw = lb.predict(d.test_x, raw_score=True, num_threads=d.params["threads"])
    raw.astype("<f8").tofile(os.path.join(d.path, "lightgbm_raw.f64"))
    return {"lightgbm": d.model_path("lightgbm"), "xgboost": d.model_path("xgboost")}


def timed(min_secs, f):
    t = time.perf_counter()
    calls = 0
    while True:
        f()
        calls += 1
        elapsed = time.perf_counter() - t
        if elapsed >= min_secs:
            return elapsed / calls


def predict(req):
    d = data(req)
    min_secs = req.get("min_secs", 0.0)
    threads = d.params["threads"]
    x = d.test_x
    if req["lib"] == "lightgbm":
        b = d.models["lightgbm"]
        secs = timed(min_secs, lambda: b.predict(x, raw_score=True, num_threads=threads))
    elif req["lib"] == "xgboost":
        b = d.models["xgboost"]
        secs = timed(min_secs, lambda: b.inplace_predict(x, predict_type="margin"))
    else:
        raise ValueError(f"unknown library {req['lib']}")
    return {"seconds": secs, "rows": len(x)}


def contrib(req):
    d = data(req)
    min_secs = req.get("min_secs", 0.0)
    threads = d.params["threads"]
    x = d.test_x[: req["rows"]]
    b = d.models["lightgbm"]
    out = {"rows": len(x)}
    kind = req["lib"]
    if kind == "lightgbm":
        secs = timed(min_secs, lambda: b.predict(x, pred_contrib=True, num_threads=threads))
        if req.get("dump"):
            c = b.predict(x, pred_contrib=True, num_threads=threads)
            c.astype("<f8").tofile(os.path.join(d.path, "lightgbm_contrib.f64"))
    elif kind == "shap":
        # What a shap user writes. For a LightGBM booster, shap hands the work to LightGBM's
        # own pred_contrib (OpenMP, all cores = 2 here).
        e = shap.TreeExplainer(b)
        secs = timed(min_secs, lambda: e.shap_values(x))
    elif kind == "shap_cext":
        # shap's own C++ TreeSHAP (one thread), reached by treating the parsed trees as
        # shap's internal model instead of delegating to LightGBM.
        e = shap.TreeExplainer(b)
        if e.model.trees is None:
            return {"error": "shap could not parse these trees"}
        e.model.model_type = "internal"
        secs = timed(min_secs, lambda: e.shap_values(x, check_additivity=False))
        if req.get("check"):
            got = e.shap_values(x, check_additivity=False)
            ref = b.predict(x, pred_contrib=True, num_threads=threads)[:, :-1]
            out["max_abs_diff_vs_lightgbm"] = float(np.abs(got - ref).max())
    else:
        raise ValueError(f"unknown kind {kind}")
    out["seconds"] = secs
    return out


def versions(req):
    import platform

    d = data(req)
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lgb.__version__,
        "xgboost": xgb.__version__,
        "shap": shap.__version__,
        "lightgbm_params": d.lgb_params(),
        "xgboost_params": d.xgb_params(),
    }


OPS = {"train": train, "save": save, "predict": predict, "contrib": contrib, "versions": versions}


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        try:
            res = OPS[req["op"]](req)
        except Exception as e:  # reported to the Rust side, which decides
            res = {"error": f"{type(e).__name__}: {e}"}
        try:
            _proto.write(json.dumps(res) + "\n")
            _proto.flush()
        except BrokenPipeError:  # the Rust side is gone
            break


if __name__ == "__main__":
    main()
