"""Writes the small model fixtures of crates/candor-ml/tests/data (run once, output committed).

Usage: python make_fixtures.py OUT_DIR

- lgb_small.txt: LightGBM, 4 trees of at most 6 leaves, a native categorical feature (x1),
  NaN in x0.
- lgb_constant.txt: LightGBM that could not split (min_gain_to_split too high): one tree of
  one leaf holding the initial score.
- xgb_small.json: XGBoost gbtree binary:logistic, 4 trees of depth 3, NaN in x0.
- xgb_categorical.json: XGBoost with a categorical split (enable_categorical), to be rejected.
- small_reference.json: rows, and raw scores and SHAP contributions of the first two models.
"""

import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(3)
    n = 600
    x = np.column_stack(
        [rng.normal(size=n), rng.integers(0, 6, size=n).astype(float), rng.uniform(-1, 1, size=n)]
    )
    logit = x[:, 0] + (x[:, 1] % 2) - 0.5 * x[:, 2]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(float)
    x[rng.uniform(size=n) < 0.1, 0] = np.nan
    names = ["x0", "x1", "x2"]
    rows = x[:40].copy()
    rows[0, 1] = -0.5
    rows[1, 1] = np.nan

    params = dict(objective="binary", num_leaves=6, learning_rate=0.3, seed=1, deterministic=True,
                  num_threads=1, verbose=-1, min_data_per_group=5, cat_smooth=1, min_data_in_leaf=5)
    ds = lgb.Dataset(x, label=y, feature_name=names, categorical_feature=[1])
    lb = lgb.train(params, ds, num_boost_round=4)
    lb.save_model(os.path.join(out, "lgb_small.txt"))
    lc = lgb.train(dict(params, min_gain_to_split=1e9), ds, num_boost_round=3)
    lc.save_model(os.path.join(out, "lgb_constant.txt"))

    d = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names)
    xb = xgb.train(dict(objective="binary:logistic", tree_method="hist", max_depth=3, eta=0.3,
                        seed=1, nthread=1), d, num_boost_round=4)
    xb.save_model(os.path.join(out, "xgb_small.json"))
    dr = xgb.DMatrix(rows, missing=np.nan, feature_names=names)

    df = pd.DataFrame({"x0": x[:, 0], "x1": pd.Categorical(x[:, 1].astype(int)), "x2": x[:, 2]})
    dc = xgb.DMatrix(df, label=y, enable_categorical=True)
    xc = xgb.train(dict(objective="binary:logistic", tree_method="hist", max_depth=2, eta=0.3,
                        seed=1, nthread=1, max_cat_to_onehot=1), dc, num_boost_round=2)
    xc.save_model(os.path.join(out, "xgb_categorical.json"))

    def fl(a):
        return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]

    ref = {
        "rows": [[None if np.isnan(v) else float(v) for v in r] for r in rows],
        "lgb": {"raw": fl(lb.predict(rows, raw_score=True)),
                "contrib": fl(lb.predict(rows, pred_contrib=True))},
        "lgb_constant": {"raw": fl(lc.predict(rows, raw_score=True)),
                         "contrib": fl(lc.predict(rows, pred_contrib=True))},
        "xgb": {"raw": fl(xb.predict(dr, output_margin=True)),
                "contrib": fl(xb.predict(dr, pred_contribs=True))},
    }
    with open(os.path.join(out, "small_reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
