"""scipy's Cramér's V (no correction) and scikit-learn's mutual information (nats) for code
pairs in a CSV with columns a,b. Prints JSON."""
import json, sys
import pandas as pd
from scipy.stats.contingency import association
from sklearn.metrics import mutual_info_score
df = pd.read_csv(sys.argv[1])
table = pd.crosstab(df.a, df.b).to_numpy()
print(json.dumps({"cramers_v": float(association(table, method="cramer", correction=False)),
                  "mutual_information": float(mutual_info_score(df.a, df.b))}))
