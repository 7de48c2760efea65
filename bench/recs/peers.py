"""The peer of bench/recs: implicit's ALS (CPU, CG) on the matrix Candor trains on.

usage: peers.py DIR FACTORS ITERATIONS RUNS
  DIR holds indptr.u64, indices.u32, data.f32, shape.json and heldout.csv (user,item).
  Trains implicit RUNS times (2 threads), reports the median time, and recall@10 of implicit's
  factors and of Candor's (DIR/candor_users.f32, DIR/candor_items.f32) on the held-out items,
  already-seen items filtered. Prints JSON.
"""
import json, statistics, sys, time
import numpy as np
import scipy.sparse as sp
import implicit
from implicit.als import AlternatingLeastSquares

d, factors, iterations, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
shape = json.load(open(f"{d}/shape.json"))
m = sp.csr_matrix((np.fromfile(f"{d}/data.f32", dtype=np.float32),
                   np.fromfile(f"{d}/indices.u32", dtype=np.uint32).astype(np.int32),
                   np.fromfile(f"{d}/indptr.u64", dtype=np.uint64).astype(np.int64)),
                  shape=(shape["users"], shape["items"]))
held = np.loadtxt(f"{d}/heldout.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
times, model = [], None
for _ in range(runs):
    model = AlternatingLeastSquares(factors=factors, regularization=0.01, iterations=iterations,
                                    num_threads=2, random_state=42, calculate_training_loss=False)
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    times.append(time.perf_counter() - t)


def recall(uf, itf):
    hits = 0
    for u, i in held:
        s = itf @ uf[u]
        s[m.indices[m.indptr[u]:m.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-s, 10)[:10]
        hits += int(i in top)
    return hits / len(held)


cu = np.fromfile(f"{d}/candor_users.f32", dtype=np.float32).reshape(shape["users"], factors)
ci = np.fromfile(f"{d}/candor_items.f32", dtype=np.float32).reshape(shape["items"], factors)
print(json.dumps({"implicit_version": implicit.__version__, "implicit_seconds": statistics.median(times),
                  "implicit_recall": recall(np.asarray(model.user_factors), np.asarray(model.item_factors)),
                  "candor_recall": recall(cu, ci)}))
