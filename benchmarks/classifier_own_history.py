"""Issue 4 benchmark 2: "train on your own history" — 5-fold cross-validation of our pipeline on
messages_domain_labeled.csv with its domain labels (goal >= 0.92; a published solution reports 0.914).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import read_csv
from sklearn.model_selection import StratifiedKFold

from classifier import model as mm
from classifier.training import configure_text
from config.catalogue import load_catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--C", type=float, default=0.5)
    args = ap.parse_args()
    rows = read_csv("messages_domain_labeled.csv")
    configure_text(load_catalogue())
    texts = np.array([r["text"] for r in rows], dtype=object)
    labels = np.array([r["label"] for r in rows])
    accs, secs = [], []
    for k, (tr, te) in enumerate(StratifiedKFold(args.folds, shuffle=True, random_state=12345)
                                 .split(texts, labels), 1):
        t = time.perf_counter()
        model = mm.fit(list(texts[tr]), list(labels[tr]), C=args.C)
        secs.append(time.perf_counter() - t)
        proba = model.predict_proba(list(texts[te]))
        pred = np.array(model.labels)[proba.argmax(axis=1)]
        accs.append(float((pred == labels[te]).mean()))
        print(f"fold {k}: accuracy {accs[-1]:.4f} (fit {secs[-1]:.1f}s)")
    print(f"{args.folds}-fold accuracy: mean {statistics.mean(accs):.4f}, median {statistics.median(accs):.4f}, "
          f"min {min(accs):.4f} (goal >= 0.92); median fit time {statistics.median(secs):.1f}s "
          f"on {len(texts) * (args.folds - 1) // args.folds} texts")


if __name__ == "__main__":
    main()
