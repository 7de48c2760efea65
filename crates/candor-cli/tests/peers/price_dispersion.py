"""Independent reference for `candor pricing audit` on UCI Online Retail (pandas + NumPy).

Reads the order lines, leaves out cancellations (InvoiceNo starting with C) and lines without
a positive price or quantity, keeps the 20 products with the most lines (ties by StockCode),
and per product, month and country computes the price paid per unit (sum of price x quantity
over sum of quantity), the reference country of each product-month (most lines, then most
units, then first seen), each country's ratio to it, and whether it lies beyond the policy's
threshold (1.25, or below 1/1.25). Groups with fewer than 5 lines are too small.

It also draws its own percentile bootstrap (NumPy's generator, 2000 resamples, lines
resampled within each country) so the test can check Candor's intervals agree to within
Monte Carlo error.

Prints JSON: {"products": [...], "cells": {"product|month": {"reference": ..., "groups":
{country: [lines, mean_price, ratio or null, beyond, lo, hi]}}}}.
"""

import json
import sys

import numpy as np
import pandas as pd

MAX_RATIO = 1.25
MIN_LINES = 5
TOP = 20

path = sys.argv[1]
df = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "Country": str})
df = df[~df["InvoiceNo"].str.strip().str.startswith("C")]
df = df[(df["UnitPrice"] > 0) & (df["Quantity"] > 0)]
df["StockCode"] = df["StockCode"].str.strip()
df["Country"] = df["Country"].fillna("").str.strip()
counts = df.groupby("StockCode").size().reset_index(name="n")
counts = counts.sort_values(["n", "StockCode"], ascending=[False, True])
top = list(counts["StockCode"].head(TOP))
d = df[df["StockCode"].isin(top)].copy()
# Candor parses "2010-12-01 08:26:00" as UTC and labels months from it.
d["month"] = pd.to_datetime(d["InvoiceDate"]).dt.strftime("%Y-%m")
first_seen = {c: i for i, c in enumerate(pd.unique(d["Country"]))}
d["pq"] = d["UnitPrice"] * d["Quantity"]

rng = np.random.default_rng(7)
out = {"products": top, "cells": {}}
for (product, month), cell in d.groupby(["StockCode", "month"], sort=True):
    stats = {}
    for country, g in cell.groupby("Country", sort=False):
        stats[country] = (len(g), g["Quantity"].sum(), g["pq"].sum() / g["Quantity"].sum(), g)
    eligible = [c for c, s in stats.items() if s[0] >= MIN_LINES]
    reference = None
    if eligible:
        reference = sorted(eligible, key=lambda c: (-stats[c][0], -stats[c][1], first_seen[c]))[0]
    compare = reference is not None and len(eligible) >= 2
    boot = {}
    if compare:
        for c in eligible:
            g = stats[c][3]
            p, q = g["UnitPrice"].to_numpy(), g["Quantity"].to_numpy()
            idx = rng.integers(0, len(g), size=(2000, len(g)))
            boot[c] = (p[idx] * q[idx]).sum(axis=1) / q[idx].sum(axis=1)
    groups = {}
    for c, (n, _q, mean, _g) in stats.items():
        if compare and c in eligible:
            ratio = mean / stats[reference][2]
            beyond = ratio > MAX_RATIO or ratio < 1 / MAX_RATIO
            lo = hi = None
            if c != reference:
                r = boot[c] / boot[reference]
                lo, hi = float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))
            groups[c] = [int(n), float(mean), float(ratio), bool(beyond), lo, hi]
        else:
            groups[c] = [int(n), float(mean), None, False, None, None]
    out["cells"][f"{product}|{month}"] = {"reference": reference, "groups": groups}
print(json.dumps(out))
