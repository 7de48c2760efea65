"""Independent reference for `candor journeys uplift` on Hillstrom's data: pandas group means,
scipy's normal quantile and survival function. Prints JSON: "arm|attr|value|outcome" →
[treated, control, uplift, ci_low, ci_high, p]."""
import json
import sys

import numpy as np
import pandas as pd
from scipy.stats import norm

df = pd.read_csv(sys.argv[1])
control = "No E-Mail"
outcomes = ["visit", "conversion", "spend"]
binary = {"visit", "conversion"}
z = norm.ppf(0.975)
out = {}


def effect(t, c, o):
    mt, mc = t[o].mean(), c[o].mean()
    if o in binary:
        var = mt * (1 - mt) / len(t) + mc * (1 - mc) / len(c)
    else:
        var = t[o].var(ddof=1) / len(t) + c[o].var(ddof=1) / len(c)
    se = np.sqrt(var)
    d = mt - mc
    p = 2 * norm.sf(abs(d / se)) if se > 0 else None
    return [mt, mc, d, d - z * se, d + z * se, p]


for arm in sorted(set(df["segment"]) - {control}):
    t_all, c_all = df[df.segment == arm], df[df.segment == control]
    for o in outcomes:
        out[f"{arm}|||{o}"] = effect(t_all, c_all, o)
    for attr in ["newbie", "channel", "history_segment", "zip_code"]:
        for v in sorted(df[attr].astype(str).unique()):
            t = t_all[t_all[attr].astype(str) == v]
            c = c_all[c_all[attr].astype(str) == v]
            for o in outcomes:
                out[f"{arm}|{attr}|{v}|{o}"] = effect(t, c, o)
print(json.dumps(out))
