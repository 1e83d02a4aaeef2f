"""Issue 4 benchmarks 1, 3, 4: the shipped model (team corpus only) on real citizen messages.

1. accuracy of the predicted matter's domain on messages_domain_labeled.csv (goal >= 0.80);
3. agreement of the predicted agency kind with the noisy ``weak_agency_single`` of
   messages_with_replies.csv, overall and per kind;
4. operating point: precision of "auto" decisions and the auto share over thresholds
   (goal: precision >= 0.95 with >= 70% auto), from the router's own decisions (whose confidence is
   the chosen agency's), beside the same curve on the top matter's probability alone.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

import numpy as np
from _common import read_csv, shipped_model_dir

from classifier import model as mm
from classifier.router import Router, RouteRequest
from classifier.training import configure_text, evaluate
from config.catalogue import load_catalogue
from config.settings import Settings

THRESHOLDS = [i / 20 for i in range(0, 20)]


def contested_pairs(model: mm.MatterModel, texts: list[str], k: int = 5) -> list[tuple[str, str, int]]:
    """The matter pairs the model most often hesitates between on real letters (no gold matter exists for
    them): the best two of a ticket, counted when the second has at least half the first's probability."""
    pairs: Counter[tuple[str, str]] = Counter()
    for (a, pa), (b, pb) in (row[:2] for row in model.top(texts, k=2)):
        if pb >= pa / 2:
            pairs[tuple(sorted((a, b)))] += 1  # type: ignore[arg-type]
    return [(a, b, n) for (a, b), n in pairs.most_common(k)]


def decision_curve(router: Router, texts: list[str], gold: list[str]) -> list[dict[str, float]]:
    """Auto share and domain precision of auto decisions over thresholds, from one routing pass."""
    decisions = router.route_many([RouteRequest(t) for t in texts])
    conf = np.array([d.confidence if d.agency else -1.0 for d in decisions])  # no owner: never auto
    correct = np.array([d.domain == g for d, g in zip(decisions, gold, strict=True)])
    out = []
    for th in THRESHOLDS:
        auto = conf >= th
        out.append({"threshold": th, "auto_share": float(auto.mean()),
                    "precision": float(correct[auto].mean()) if auto.any() else float("nan")})
    return out

WEAK_TO_KIND = {
    "公安/交警": "public_security", "教育": "education", "交通运输": "transport", "城管执法": "urban_management",
    "住建": "housing_construction", "自然资源/规划": "planning_resources", "人社/劳动保障": "human_resources",
    "发改": "development_reform", "生态环境": "ecology_environment", "卫健": "health",
    "市场监管": "market_regulation", "民政": "civil_affairs", "水务/水利": "water_affairs",
    "文旅": "culture_tourism", "农业农村": "agriculture_rural", "应急/安监": "emergency_management",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", help="use this model folder (default: train the shipped model afresh)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    domain_rows = read_csv("messages_domain_labeled.csv")
    reply_rows = [r for r in read_csv("messages_with_replies.csv") if r.get("weak_agency_single")]
    catalogue = load_catalogue()
    configure_text(catalogue)
    from pathlib import Path

    model = mm.load(Path(args.model_dir) if args.model_dir else shipped_model_dir(remove_at_exit=True))

    texts = [r["text"] for r in domain_rows]
    gold = [r["label"] for r in domain_rows]
    rep = evaluate(model, texts, gold, catalogue, threshold=0.5, label_kind="domain", curve=THRESHOLDS)
    matter_curve = rep["curve"]
    curve = decision_curve(Router(model, catalogue, Settings()), texts, gold)

    kinds_gold = [WEAK_TO_KIND[r["weak_agency_single"]] for r in reply_rows
                  if r["weak_agency_single"] in WEAK_TO_KIND]
    kinds_texts = [r["text"] for r in reply_rows if r["weak_agency_single"] in WEAK_TO_KIND]
    kind_rep = evaluate(model, kinds_texts, kinds_gold, catalogue, threshold=0.5, label_kind="agency_kind")
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    pred_kinds = Counter()
    for k, d in kind_rep["per_class"].items():
        if k in set(kinds_gold):
            per_kind[k] = [round(d["recall"] * d["support"]), int(d["support"])]
    for c in kind_rep["confusions"]:
        pred_kinds[(c["gold"], c["predicted"])] = c["count"]

    result = {
        "model_version": model.version,
        "1_domain_accuracy": rep["accuracy"], "1_domain_macro_f1": rep["macro_f1"], "1_n": rep["n"],
        "1_confusions": rep["confusions"][:8],
        "3_agency_kind_agreement": kind_rep["accuracy"], "3_n": kind_rep["n"],
        "3_per_kind": {k: {"agree": a, "n": n, "rate": round(a / n, 3)} for k, (a, n) in
                       sorted(per_kind.items(), key=lambda kv: -kv[1][1])},
        "5_contested_pairs": contested_pairs(model, texts),
        "4_curve": curve, "4_curve_matter_probability": matter_curve,
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    print(f"model {model.version}")
    print(f"(1) cold-start domain accuracy on {rep['n']} labelled messages: {rep['accuracy']:.3f} "
          f"(macro-F1 {rep['macro_f1']:.3f}; goal >= 0.80)")
    print("    most confused domains: " + "; ".join(f"{c['gold']}->{c['predicted']} ×{c['count']}"
                                                     for c in rep["confusions"][:6]))
    print(f"(3) agency-kind agreement with weak_agency_single on {kind_rep['n']} messages: "
          f"{kind_rep['accuracy']:.3f}")
    for k, v in result["3_per_kind"].items():
        print(f"      {k:24} {v['agree']:4}/{v['n']:<4} {v['rate']:.2f}")
    print("(4) threshold  auto-share  precision-of-auto   (on the top matter's probability alone)")
    for row, alone in zip(curve, matter_curve, strict=True):
        print(f"      {row['threshold']:.2f}      {row['auto_share']:.3f}      {row['precision']:.3f}"
              f"              ({alone['auto_share']:.3f}  {alone['precision']:.3f})")
    names = {code: m.name for code, m in catalogue.matters.items()}
    print("(5) matter pairs the model hesitates between most (second >= half the first), on the same letters:")
    for a, b, n in result["5_contested_pairs"]:
        print(f"      {a} {names.get(a, a)} / {b} {names.get(b, b)}: {n}")
    ok = [r for r in curve if r["precision"] >= 0.95 and r["auto_share"] >= 0.70]
    print(f"    operating point with precision >= 0.95 and >= 70% auto: {ok[0] if ok else 'none reached'}")


if __name__ == "__main__":
    main()
