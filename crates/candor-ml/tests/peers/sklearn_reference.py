"""scikit-learn's numbers for the same inputs as Candor's metrics, calibrators and logistic
regression. Reads DIR/x.csv (standardized features, no header), DIR/y.csv (0/1), DIR/s.csv
(scores), DIR/lambda.txt; prints one JSON object."""
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score, log_loss, brier_score_loss
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.calibration import _sigmoid_calibration

d = sys.argv[1]
x = np.loadtxt(f"{d}/x.csv", delimiter=",", ndmin=2)
y = np.loadtxt(f"{d}/y.csv")
s = np.loadtxt(f"{d}/s.csv")
lam = float(open(f"{d}/lambda.txt").read())
p = 1 / (1 + np.exp(-s))
iso = IsotonicRegression(out_of_bounds="clip").fit(s, y)
grid = np.linspace(s.min(), s.max(), 50)
a, b = _sigmoid_calibration(s, y)
lr = LogisticRegression(C=1 / lam, tol=1e-12, max_iter=10000).fit(x, y)
print(json.dumps({
    "auc": roc_auc_score(y, s),
    "log_loss": log_loss(y, p),
    "brier": brier_score_loss(y, p),
    "isotonic_grid": grid.tolist(),
    "isotonic": iso.predict(grid).tolist(),
    "platt_a": -a, "platt_b": -b,
    "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0]),
}))
