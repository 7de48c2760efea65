"""Fairlearn's numbers for a CSV of y (0/1), p (0/1 selected), s (score), a and b (protected attributes;
empty = missing, labelled "(missing)" as Candor does). Prints one JSON object keyed by
attribute ("a", "b", "a × b")."""
import json, sys
import pandas as pd
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score
from fairlearn.metrics import (MetricFrame, selection_rate, true_positive_rate, false_positive_rate,
    false_negative_rate, demographic_parity_difference, demographic_parity_ratio,
    equalized_odds_difference, equalized_odds_ratio)

df = pd.read_csv(sys.argv[1], dtype={"a": str, "b": str, "s": float}, keep_default_na=False)
for c in ["a", "b"]:
    df[c] = df[c].replace("", "(missing)")
metrics = {
    "selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
    "fnr": false_negative_rate, "accuracy": accuracy_score,
    "precision": lambda y, p: precision_score(y, p, zero_division=0),
}
out = {}
for name, sf in [("a", df["a"]), ("b", df["b"]), ("a × b", df[["a", "b"]])]:
    mf = MetricFrame(metrics=metrics, y_true=df.y, y_pred=df.p, sensitive_features=sf)
    groups = {}
    for idx, row in mf.by_group.iterrows():
        key = idx if isinstance(idx, str) else " & ".join(idx)
        groups[key] = {k: float(v) for k, v in row.items()}
    # Per-group count, mean score and AUC (scikit-learn; None with one class only).
    keys = df["a"] if isinstance(sf, pd.Series) and sf.name == "a" else (
        df["b"] if isinstance(sf, pd.Series) else df["a"] + " & " + df["b"])
    for key, part in df.groupby(keys):
        g = groups[key]
        g["count"] = float(len(part))
        g["mean_score"] = float(part.s.mean())
        g["auc"] = float(roc_auc_score(part.y, part.s)) if part.y.nunique() == 2 else None
    res = {"groups": groups,
           "dp_difference": demographic_parity_difference(df.y, df.p, sensitive_features=sf),
           "dp_ratio": demographic_parity_ratio(df.y, df.p, sensitive_features=sf),
           "eo_difference": equalized_odds_difference(df.y, df.p, sensitive_features=sf),
           "eo_ratio": equalized_odds_ratio(df.y, df.p, sensitive_features=sf)}
    try:
        from fairlearn.metrics import equal_opportunity_difference, equal_opportunity_ratio
        res["eop_difference"] = equal_opportunity_difference(df.y, df.p, sensitive_features=sf)
        res["eop_ratio"] = equal_opportunity_ratio(df.y, df.p, sensitive_features=sf)
    except ImportError:
        tpr = mf.by_group["tpr"]
        res["eop_difference"] = float(tpr.max() - tpr.min())
        res["eop_ratio"] = float(tpr.min() / tpr.max())
    out[name] = {k: (float(v) if not isinstance(v, dict) else v) for k, v in res.items()}
print(json.dumps(out))
