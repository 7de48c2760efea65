"""Reference outputs of LightGBM and XGBoost for Candor's model-import cross-check.

Usage: python lgb_xgb_reference.py BANK_FULL_CSV OUT_DIR

Trains on the UCI bank-marketing data (target `y`, `duration` dropped) and writes to OUT_DIR:
- the saved models: lgb.txt (LightGBM, `job` and `month` as native categorical features),
  lgb_zero.txt (LightGBM with zero_as_missing), lgb_rf.txt (LightGBM random forest,
  average_output), xgb.json (XGBoost gbtree), xgb_dart.json (XGBoost dart);
- reference.json: the feature matrix of the checked rows (NaN written as null) and, per model,
  raw scores, SHAP contributions (bias last) and probabilities as the libraries compute them.
Everything is seeded; floats are written with repr (full precision).
"""

import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb

N_CHECK = 2000
THREADS = 2


def load(path):
    df = pd.read_csv(path, sep=";")
    y = (df.pop("y") == "yes").astype(np.float64).to_numpy()
    df = df.drop(columns=["duration"])
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            cats = sorted(df[col].unique())
            df[col] = pd.Categorical(df[col], categories=cats).codes.astype(np.float64)
        else:
            df[col] = df[col].astype(np.float64)
    rng = np.random.default_rng(20240611)
    n = len(df)
    # Missing values: numeric (balance, age) and a native categorical (job).
    df.loc[rng.random(n) < 0.10, "balance"] = np.nan
    df.loc[rng.random(n) < 0.03, "age"] = np.nan
    df.loc[rng.random(n) < 0.02, "job"] = np.nan
    return df, y


def rows_to_json(x):
    return [[None if np.isnan(v) else float(v) for v in row] for row in x]


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def main():
    csv_path, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    df, y = load(csv_path)
    names = list(df.columns)
    x = df.to_numpy(dtype=np.float64)
    cat = [names.index("job"), names.index("month")]
    check = x[:: len(x) // N_CHECK][:N_CHECK].copy()
    # Edge values on categorical and zero-as-missing paths.
    check[0, cat[0]] = -0.5  # LightGBM truncates toward zero: category 0
    check[1, cat[0]] = -1.0  # negative: right
    check[2, cat[0]] = 1e12  # beyond any category: right
    check[3, names.index("balance")] = 0.0
    check[4, names.index("pdays")] = 0.0

    ref = {"feature_names": names, "rows": rows_to_json(check), "models": {}}

    base = dict(
        objective="binary",
        num_leaves=31,
        learning_rate=0.1,
        seed=7,
        deterministic=True,
        num_threads=THREADS,
        verbose=-1,
        min_data_per_group=50,
        cat_smooth=10,
    )
    variants = {
        "lgb": (dict(base), 100),
        # zero_as_missing diverges on these data without a cap on the leaf values.
        "lgb_zero": (dict(base, zero_as_missing=True, max_delta_step=2.0), 30),
        "lgb_rf": (
            dict(base, boosting="rf", bagging_fraction=0.6, bagging_freq=1, feature_fraction=0.8),
            10,
        ),
    }
    for key, (params, rounds) in variants.items():
        ds = lgb.Dataset(x, label=y, feature_name=names, categorical_feature=cat, free_raw_data=False)
        booster = lgb.train(params, ds, num_boost_round=rounds)
        path = os.path.join(out, key + ".txt")
        booster.save_model(path)
        ref["models"][key] = {
            "file": path,
            "raw": floats(booster.predict(check, raw_score=True)),
            "contrib": floats(booster.predict(check, pred_contrib=True)),
            "prob": floats(booster.predict(check)),
            "iterations": booster.current_iteration(),
        }

    xbase = dict(
        objective="binary:logistic",
        tree_method="hist",
        max_depth=6,
        eta=0.1,
        seed=7,
        nthread=THREADS,
    )
    xvariants = {
        "xgb": (dict(xbase), 100),
        "xgb_dart": (dict(xbase, booster="dart", rate_drop=0.1, skip_drop=0.0), 20),
    }
    dtrain = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names)
    dcheck = xgb.DMatrix(check, missing=np.nan, feature_names=names)
    for key, (params, rounds) in xvariants.items():
        booster = xgb.train(params, dtrain, num_boost_round=rounds)
        path = os.path.join(out, key + ".json")
        booster.save_model(path)
        ref["models"][key] = {
            "file": path,
            "raw": floats(booster.predict(dcheck, output_margin=True)),
            "contrib": floats(booster.predict(dcheck, pred_contribs=True)),
            "prob": floats(booster.predict(dcheck)),
        }

    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
