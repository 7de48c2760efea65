"""LightGBM on a bank-marketing-like CSV with Candor's split and encoding, as an independent
reference for Candor's trainer. Prints one JSON object.

Usage: python bank_lightgbm.py CSV TARGET EXCLUDE,COLS PROTECTED,COLS [TREES LEAVES LR]
Holdout: every 5th row (1-based row numbers 5, 10, ...), as `candor train` does.
"""
import json, sys
import numpy as np, pandas as pd, lightgbm as lgb
from sklearn.metrics import roc_auc_score

path, target = sys.argv[1], sys.argv[2]
exclude = [c for c in sys.argv[3].split(",") if c]
protected = [c for c in sys.argv[4].split(",") if c]
trees = int(sys.argv[5]) if len(sys.argv) > 5 else 100
leaves = int(sys.argv[6]) if len(sys.argv) > 6 else 31
lr = float(sys.argv[7]) if len(sys.argv) > 7 else 0.1

df = pd.read_csv(path, sep=None, engine="python")
y = df[target].astype(str).str.lower().isin(["yes", "1", "true", "y"]).astype(int).to_numpy()
X = df.drop(columns=[target] + exclude + protected)
hold = (np.arange(len(df)) + 1) % 5 == 0
out = {}
params = dict(n_estimators=trees, num_leaves=leaves, learning_rate=lr, verbose=-1, random_state=1)
# One-hot, as Candor encodes categorical columns.
Xo = pd.get_dummies(X, dtype=float)
for name, Xe in [("onehot", Xo), ("native", X.astype({c: "category" for c in X.select_dtypes(exclude="number").columns}))]:
    m = lgb.LGBMClassifier(**params).fit(Xe[~hold], y[~hold])
    p = m.predict_proba(Xe[hold])[:, 1]
    out[name] = roc_auc_score(y[hold], p)
print(json.dumps(out))
