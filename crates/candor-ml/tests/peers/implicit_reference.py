"""implicit's ALS against Candor's on the same interactions, evaluated by one code path.

  implicit_reference.py prep DATA.csv.gz SPLIT OUT_DIR
      Order lines of Online Retail (not cancelled, positive quantity, with a customer) before
      SPLIT → train.csv (user,item,count of lines); on/after SPLIT, items the customer had not
      bought before → test.csv (user,item). Users and items are dense indices.
  implicit_reference.py eval DIR FACTORS ITERATIONS REG ALPHA K
      Trains implicit's CPU ALS (CG, 2 threads) on train.csv and reads Candor's factors
      (DIR/candor_users.f32, DIR/candor_items.f32, row-major float32). For both: top-K of
      every test user with already-bought items filtered, then recall@K, precision@K, NDCG@K
      and MAP@K computed here. Prints JSON.
"""
import json, sys, time
import numpy as np


def prep(data, split, out):
    import pandas as pd
    df = pd.read_csv(data, dtype={"InvoiceNo": str, "StockCode": str})
    df = df[df.CustomerID.notna() & (df.Quantity > 0) & ~df.InvoiceNo.str.startswith("C")]
    df["InvoiceDate"] = pd.to_datetime(df.InvoiceDate)
    train = df[df.InvoiceDate < split]
    test = df[df.InvoiceDate >= split]
    users = {u: i for i, u in enumerate(sorted(train.CustomerID.unique()))}
    items = {s: i for i, s in enumerate(sorted(train.StockCode.unique()))}
    t = train.groupby(["CustomerID", "StockCode"]).size().reset_index(name="n")
    with open(f"{out}/train.csv", "w") as f:
        f.write("user,item,value\n")
        for r in t.itertuples():
            f.write(f"{users[r.CustomerID]},{items[r.StockCode]},{r.n}\n")
    bought = set(zip(t.CustomerID, t.StockCode))
    te = test[test.CustomerID.isin(users) & test.StockCode.isin(items)]
    pairs = sorted({(users[c], items[s]) for c, s in zip(te.CustomerID, te.StockCode) if (c, s) not in bought})
    with open(f"{out}/test.csv", "w") as f:
        f.write("user,item\n")
        for u, i in pairs:
            f.write(f"{u},{i}\n")
    print(json.dumps({"users": len(users), "items": len(items), "train": len(t), "test": len(pairs)}))


def metrics(user_f, item_f, train, test_by_user, k):
    rec, prec, ndcg, mapk = [], [], [], []
    for u, rel in test_by_user.items():
        s = item_f @ user_f[u]
        s[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hits, dcg, ap = 0, 0.0, 0.0
        for r, i in enumerate(top):
            if i in rel:
                hits += 1
                dcg += 1.0 / np.log2(r + 2)
                ap += hits / (r + 1)
        idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), k)))
        rec.append(hits / len(rel)); prec.append(hits / k); ndcg.append(dcg / idcg)
        mapk.append(ap / min(len(rel), k))
    return {"recall": float(np.mean(rec)), "precision": float(np.mean(prec)),
            "ndcg": float(np.mean(ndcg)), "map": float(np.mean(mapk)), "users": len(rec)}


def evaluate(d, factors, iterations, reg, alpha, k):
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    tr = np.loadtxt(f"{d}/train.csv", delimiter=",", skiprows=1, dtype=np.int64)
    te = np.loadtxt(f"{d}/test.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    users, items = tr[:, 0].max() + 1, tr[:, 1].max() + 1
    train = sp.csr_matrix((tr[:, 2].astype(np.float32), (tr[:, 0], tr[:, 1])), shape=(users, items))
    test_by_user = {}
    for u, i in te:
        test_by_user.setdefault(int(u), set()).add(int(i))
    model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha,
                                    iterations=iterations, num_threads=2, random_state=42,
                                    calculate_training_loss=False)
    t = time.perf_counter()
    model.fit(train, show_progress=False)
    secs = time.perf_counter() - t
    uf = np.asarray(model.user_factors)
    itf = np.asarray(model.item_factors)
    cu = np.fromfile(f"{d}/candor_users.f32", dtype=np.float32).reshape(users, factors)
    ci = np.fromfile(f"{d}/candor_items.f32", dtype=np.float32).reshape(items, factors)
    pop = np.asarray(train.sum(axis=0)).ravel()
    pop_f = np.zeros((users, 1), dtype=np.float32) + 1
    out = {"implicit": metrics(uf, itf, train, test_by_user, k),
           "candor": metrics(cu, ci, train, test_by_user, k),
           "popularity": metrics(pop_f, pop.reshape(-1, 1).astype(np.float32), train, test_by_user, k),
           "implicit_seconds": secs}
    print(json.dumps(out))


if sys.argv[1] == "prep":
    prep(sys.argv[2], sys.argv[3], sys.argv[4])
else:
    evaluate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]),
             int(sys.argv[7]))
