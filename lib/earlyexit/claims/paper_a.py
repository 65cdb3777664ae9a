"""Paper A's claims (§I Fig. 3, §III, §V and the appendix tables), each measured on its notebook's result table.

Thresholds come from the paper: an accuracy change within the 0.5 pp the paper calls negligible for its
feature codec (§V-C) counts as "without much impairing accuracy"; a saving of on-device computation counts as
great or significant from half of what §III's oracle saves (42.44 -> 34.93 MFLOPs, 17.7 %).
"""

from __future__ import annotations

import pandas as pd

from ..core import paper
from . import diagnosis as why
from .registry import NOT_SUPPORTED, PARTLY, SUPPORTED, Claim, Result, Tables, at_least, by_share, diagnoses, listing

#: §V-C: the feature codec costs "less than 0.5 %" accuracy, the paper's own measure of a negligible loss.
NEGLIGIBLE_PP = paper.A_SEC5C["compression_accuracy_drop_pct"]
#: §III: the oracle's on-device saving (%), and half of it: a "great" / "significant" saving.
ORACLE_SAVING = 100 * (1 - paper.A_SEC3["oracle_device_mflops"] / paper.A_SEC3["device_mflops"])
GREAT_SAVING = ORACLE_SAVING / 2
#: Accuracy differences on 10,000 test samples below 0.1 pp (10 samples) count as level.
LEVEL_PP = 0.1
#: Within 1 pp of a printed accuracy counts as reaching it (CIFAR run-to-run spread is a few tenths).
REACHED_PP = 1.0


def _networks(df: pd.DataFrame, *keys: str) -> list[tuple[tuple, pd.DataFrame]]:
    return [((k,) if isinstance(k, str) else k, part) for k, part in df.groupby(list(keys), sort=False)]


def _name(key: tuple) -> str:
    return why.network(*key) if len(key) == 2 else why.NAMES.get(key[0], key[0])


def _failing_training(tables: Tables, failing: list[tuple]) -> str:
    return diagnoses(*(diagnoses(why.training(tables, *k), why.degenerate(tables, *k)) for k in failing))


# ------------------------------------------------------------------------------------------------ §III, Fig. 3


def _sec3_split(t: Tables) -> Result:
    df = t["A-sec3-motivation"].set_index("quantity").ours
    shares = [df[f"samples answered by exit {k} (%)"] for k in (1, 2, 3)]
    verdict = SUPPORTED if shares[0] > 50 else PARTLY if shares[0] + shares[1] > 50 else NOT_SUPPORTED
    ours = " / ".join(f"{s:.1f}" for s in shares) + " %"
    return Result(ours, verdict, "" if verdict == SUPPORTED else why.training(t, "vgg16bn", "cifar10"))


def _sec3_oracle(t: Tables) -> Result:
    rows = t["A-sec3-motivation"].ours.tolist()
    device, oracle = rows[4], rows[6]  # on-device MFLOPs of the early-exit network and of the oracle
    saving = 100 * (1 - oracle / device)
    return Result(
        f"{device:.2f} -> {oracle:.2f} MFLOPs on the device (-{saving:.1f} %)", at_least(saving, GREAT_SAVING, 1e-9)
    )


def _fig3(t: Tables) -> Result:
    df = t["A-fig3-light-exits"]
    both = df[(df.accuracy_at_least >= 70) & df["regular exits"].notna() & df["light exits"].notna()]
    if both.empty:
        top = df.dropna(subset=["light exits"]).accuracy_at_least.max()
        return Result(
            f"the light network reaches at most {top:.0f} %",
            "UNTESTABLE",
            diagnoses(why.training(t, "vgg16bn_light", "cifar10"), why.training(t, "vgg16bn", "cifar10")),
        )
    hits = int((both["regular exits"] < both["light exits"]).sum())
    return Result(f"regular cheaper at {hits} of {len(both)} accuracy levels >= 70 %", by_share(hits, len(both)))


# ---------------------------------------------------------------------------------------------- Table I, appendix


def _table1_mflops(t: Tables) -> Result:
    df = t["A-table1-mflops"]
    hits = int((df["diff_%"].abs() <= 1).sum())
    return Result(f"{hits} of {len(df)} within 1 % (largest {df['diff_%'].abs().max():.2f} %)", by_share(hits, len(df)))


def _table1_accuracy(t: Tables) -> Result:
    df = t["A-table1-accuracy"].dropna(subset=["paper"])
    reached = df.gap_pp >= -REACHED_PP
    ours = listing(f"{why.network(r.backbone, r.dataset)} {r.ours:.1f} ({r.paper:.2f})" for r in df.itertuples())
    failing = [(r.backbone, r.dataset) for r, ok in zip(df.itertuples(), reached) if not ok]
    return Result(ours, by_share(int(reached.sum()), len(df)), diagnoses(*(why.training(t, *k) for k in failing)))


def _feature_sizes(t: Tables) -> Result:
    df = pd.concat([t["A-table3-exit-feature-sizes"], t["A-table4-exit-feature-sizes"]])
    hits = int(df["match"].sum())
    return Result(f"{hits} of {len(df)} layer shapes equal", by_share(hits, len(df)))


def _part_mflops(t: Tables) -> Result:
    df = pd.concat([t["A-table5-part-mflops"], t["A-table6-part-mflops"]])
    hits = int((df["diff_%"].abs() <= 1).sum())
    return Result(f"{hits} of {len(df)} parts within 1 %", by_share(hits, len(df)))


# ------------------------------------------------------------------------------------------------------- Fig. 7


def _fig7_saves(t: Tables) -> Result:
    hits, parts, failing = 0, [], []
    for key, part in _networks(t["A-fig7-exit-predictor"], "backbone", "dataset"):
        top = part.loc[part["lambda"].idxmax()]
        change = top.ep_accuracy - top.ee_accuracy
        ok = top.saved_pct >= GREAT_SAVING and change >= -NEGLIGIBLE_PP
        hits += ok
        failing += [] if ok else [key]
        parts.append(f"{_name(key)} -{top.saved_pct:.1f} % ({change:+.2f} pp)")
    return Result(listing(parts), by_share(hits, len(parts)), _failing_training(t, failing))


def _fig7_pruning(t: Tables) -> Result:
    hits, parts = 0, []
    for key, part in _networks(t["A-fig7-exit-predictor"].dropna(subset=["pruned_mflops"]), "backbone", "dataset"):
        loss = (part.ee_accuracy - part.pruned_accuracy).mean()
        saving = 100 * (1 - part.pruned_mflops / part.ee_mflops).mean()
        hits += loss > NEGLIGIBLE_PP and saving > 0
        parts.append(f"{_name(key)} -{saving:.1f} % FLOPs, {-loss:+.2f} pp")
    return Result(listing(parts), by_share(hits, len(parts)))


def _fig7_grows(t: Tables) -> Result:
    hits, parts, failing = 0, [], []
    for key, part in _networks(t["A-fig7-exit-predictor"], "backbone", "dataset"):
        low, high = part.loc[part["lambda"].idxmin()], part.loc[part["lambda"].idxmax()]
        ok = high.saved_pct > low.saved_pct
        hits += ok
        failing += [] if ok else [key]
        parts.append(f"{_name(key)} {low.saved_pct:+.1f} -> {high.saved_pct:+.1f} %")
    return Result(listing(parts), by_share(hits, len(parts)), _failing_training(t, failing))


def _fig7_overthinking(t: Tables) -> Result:
    df = t["A-fig7-exit-predictor"]
    hits, parts = 0, []
    for key, part in _networks(df[df.backbone.isin(["alexnet", "vgg16bn"])], "backbone", "dataset"):
        drop = part.ee_accuracy.max() - part.loc[part["lambda"].idxmax()].ee_accuracy
        hits += drop >= LEVEL_PP
        parts.append(f"{_name(key)} -{drop:.2f} pp")
    return Result(listing(parts), by_share(hits, len(parts)))


# -------------------------------------------------------------------------------------------- Fig. 8, 9, Table II


def _fig8(t: Tables) -> Result:
    df = t["A-fig8-pruning-ratios"]
    ep = df[df.method == "EE+EP"].iloc[0]
    pruned = df[df.method == "pruned"]
    ahead = ep.accuracy - pruned.accuracy
    hits = int((ahead >= LEVEL_PP).sum())
    ours = listing(f"{r:.0%}: {a:+.2f} pp" for r, a in zip(pruned.pruning_ratio, ahead))
    return Result(f"EE+EP over pruning {ours}", by_share(hits, len(pruned)))


def _table2(t: Tables) -> pd.DataFrame:
    df = t["A-table2-ep-architectures"]
    return df[df.method != "EE (no EP)"]


def _table2_similar(t: Tables) -> Result:
    hits, parts = 0, []
    for key, part in _networks(_table2(t), "backbone"):
        spread = part.accuracy.max() - part.accuracy.min()
        hits += spread <= NEGLIGIBLE_PP
        parts.append(f"{_name(key)} {spread:.2f} pp")
    return Result(f"accuracy range {listing(parts)}", by_share(hits, len(parts)))


def _table2_cheapest(t: Tables) -> Result:
    hits, parts = 0, []
    for key, part in _networks(_table2(t), "backbone"):
        best = part.loc[part.ours.idxmin(), "method"]
        hits += best == "ours"
        parts.append(f"{_name(key)}: {best}")
    return Result(f"cheapest {listing(parts)}", by_share(hits, len(parts)))


def _table2_accuracy(t: Tables) -> Result:
    rows = _table2(t)
    rows = rows[rows.method == "ours"]
    reached = rows.accuracy >= rows.paper_accuracy - REACHED_PP
    ours = listing(f"{_name((r.backbone,))} {r.accuracy:.2f} ({r.paper_accuracy:.2f})" for r in rows.itertuples())
    failing = [(r.backbone, "cifar100") for r, ok in zip(rows.itertuples(), reached) if not ok]
    return Result(ours, by_share(int(reached.sum()), len(rows)), _failing_training(t, failing))


def _table2_mflops(t: Tables) -> Result:
    rows = _table2(t)
    rows = rows[rows.method == "ours"]
    off = 100 * (rows.ours / rows.paper - 1)
    ours = listing(
        f"{_name((r.backbone,))} {r.ours:.2f} ({r.paper:.2f}, {o:+.0f} %)" for r, o in zip(rows.itertuples(), off)
    )
    failing = [(r.backbone, "cifar100") for r, o in zip(rows.itertuples(), off) if abs(o) > 5]
    return Result(ours, by_share(int((off.abs() <= 5).sum()), len(rows)), _failing_training(t, failing))


def _fig9(t: Tables) -> Result:
    df = t["A-fig9-three-exits"]
    ok = (df.saved_pct >= GREAT_SAVING) & (df.accuracy_change_pp >= -NEGLIGIBLE_PP)
    ours = listing(
        f"lambda {r['lambda']}: -{r.saved_pct:.1f} % ({r.accuracy_change_pp:+.2f} pp)" for _, r in df.iterrows()
    )
    return Result(
        ours, by_share(int(ok.sum()), len(df)), "" if ok.all() else why.training(t, "resnet44_3exit", "cifar100")
    )


# ------------------------------------------------------------------------------------------------------ Fig. 10


def _fig10(*prefixes: str):
    """The verdict of notebook 19's own tests of Fig. 10 (rows of its table starting with ``prefixes``), and why not:
    the reason a failing test measured itself (its ``why`` column, such as the codec's fit), else the backbone's
    training."""

    def measure(t: Tables) -> Result:
        df = t["A-fig10-bandwidth"]
        rows = df[df.claim.str.startswith(prefixes)]
        holds = rows.holds.astype(str) == "True"
        verdict = by_share(int(holds.sum()), len(rows))
        ours = listing(f"{c}: {o}" for c, o in zip(rows.claim, rows.ours)) if len(rows) > 1 else rows.ours.iloc[0]
        measured = diagnoses(*rows.why.fillna(""))
        # the figure's premise (the last exit the most accurate) is reported even where the test passes
        diagnosis = diagnoses(
            why.degenerate(t, "vgg16bn", "cifar100"),
            measured or ("" if verdict == SUPPORTED else why.training(t, "vgg16bn", "cifar100")),
        )
        return Result(ours, verdict, diagnosis)

    return measure


def _claim(id_: str, where: str, table: str, text: str, paper_value: str, rule: str, measure) -> Claim:
    return Claim(f"A-{id_}", "A", where, table, text, paper_value, rule, measure)


GREAT = f"{GREAT_SAVING:.1f} %"
# One list per figure notebook, named after it: the notebook imports its own list and reports it
# (earlyexit.claims.report), so that its figure stamp covers only the claims it shows and editing a claim
# reruns only that notebook. CLAIMS is the registry, in the order of the README.
SEC3_MOTIVATION = [
    _claim("sec3-exit-split", "§III", "A-sec3-motivation",
           "With both thresholds at 0.99, VGG16-BN / CIFAR-10 answers most samples at its first early exit.",
           "66.62 / 19.81 / 13.57 %",
           "SUPPORTED if exit 1 answers the majority of the test samples; PARTLY if exits 1 and 2 together do.",
           _sec3_split),
    _claim("sec3-oracle", "§III", "A-sec3-motivation",
           "An oracle that computes only the exit that answers saves a large share of the on-device computation.",
           "42.44 -> 34.93 MFLOPs on the device (-17.7 %)",
           f"SUPPORTED if the oracle saves at least half the paper's share ({GREAT}); PARTLY if it saves any.",
           _sec3_oracle),
]  # fmt: skip
FIG3_LIGHT_EXITS = [
    _claim("fig3-regular-cheaper", "§I, Fig. 3", "A-fig3-light-exits",
           "For accuracies of 70 % and above, regular-size exits need fewer FLOPs than light ones.",
           "regular cheaper at every accuracy >= 70 %",
           "By share of the accuracy levels >= 70 % that both networks reach (none: UNTESTABLE).",
           _fig3),
]  # fmt: skip
ARCHITECTURE_TABLES = [
    _claim("table1-mflops", "§V-A, Table I", "A-table1-mflops",
           "The backbones cost 62.88-333.45 MFLOPs (ptflops).", "62.88 / 333.08 / 98.52 (CIFAR-10)",
           "By share of the six backbones within 1 %.", _table1_mflops),
    _claim("appendix-feature-sizes", "Tables III-IV", "A-table3-exit-feature-sizes",
           "The early exits' layers have the printed output sizes.", "Tables III and IV",
           "By share of the layers whose shape is equal.", _feature_sizes),
    _claim("appendix-part-mflops", "Tables V-VI", "A-table5-part-mflops",
           "Each on-device part costs the printed MFLOPs.", "Tables V and VI",
           "By share of the parts within 1 %.", _part_mflops),
]  # fmt: skip
TABLE1_ACCURACY = [
    _claim("table1-accuracy", "§V-A, Table I", "A-table1-accuracy",
           "The backbones (last exits) reach the printed accuracies.", "85.95 / 94.04 / 93.91 and 60.32 / 72.70 / 72.21 %",
           f"By share of the backbones within {REACHED_PP:g} pp of the printed accuracy.", _table1_accuracy),
]  # fmt: skip
FIG7_EXIT_PREDICTOR = [
    _claim("fig7-ep-saves", "§V-B, Fig. 7", "A-fig7-exit-predictor",
           "The Exit Predictor greatly reduces the on-device computation without much impairing the accuracy.",
           "e.g. ResNet44 / CIFAR-100 41.67 MFLOPs (Table II)",
           f"By share of the networks where, at the highest threshold (0.99, §III's), the EP saves at least {GREAT} "
           f"(half of §III's oracle) and changes the accuracy by no worse than -{NEGLIGIBLE_PP:g} pp (§V-C's negligible).",
           _fig7_saves),
    _claim("fig7-pruning-costs-accuracy", "§V-B, Fig. 7", "A-fig7-exit-predictor",
           "10 % filter pruning saves some on-device computation but loses notable accuracy.",
           "notable accuracy degradation",
           f"By share of the networks where pruning saves FLOPs and loses more than {NEGLIGIBLE_PP:g} pp on average over the thresholds.",
           _fig7_pruning),
    _claim("fig7-saving-grows", "§V-B, Fig. 7", "A-fig7-exit-predictor",
           "The lower the confidence thresholds, the less the Exit Predictor saves.", "saving grows with lambda",
           "By share of the networks where the saving at the highest threshold exceeds the saving at the lowest.",
           _fig7_grows),
    _claim("fig7-overthinking", "§V-B, Fig. 7", "A-fig7-exit-predictor",
           "AlexNet and VGG16-BN lose accuracy at high thresholds (overthinking).", "accuracy drops at large lambda",
           f"By share of the AlexNet and VGG16-BN networks whose accuracy at the highest threshold is at least "
           f"{LEVEL_PP:g} pp below their best.",
           _fig7_overthinking),
]  # fmt: skip
FIG8_PRUNING_RATIOS = [
    _claim("fig8-ep-beats-pruning", "§V-B, Fig. 8", "A-fig8-pruning-ratios",
           "On ResNet44 / CIFAR-100 the Exit Predictor substantially outperforms filter pruning at every ratio.",
           "ratios 0.1-0.5",
           f"By share of the pruning ratios at which EE+EP is at least {LEVEL_PP:g} pp more accurate.", _fig8),
]  # fmt: skip
TABLE2_EP_ARCHITECTURES = [
    _claim("table2-similar-accuracy", "§V-B, Table II", "A-table2-ep-architectures",
           "All four Exit Predictor architectures give similar accuracy.", "within 0.12 pp",
           f"By share of the backbones whose four accuracies lie within {NEGLIGIBLE_PP:g} pp.", _table2_similar),
    _claim("table2-ours-cheapest", "§V-B, Table II", "A-table2-ep-architectures",
           "The proposed architecture always gives the lowest on-device computation.", "13.27 / 67.30 / 41.67 MFLOPs",
           "By share of the backbones where 'ours' has the lowest on-device MFLOPs.", _table2_cheapest),
    _claim("table2-ep-accuracy", "§V-B, Table II", "A-table2-ep-architectures",
           "With the Exit Predictor the CIFAR-100 networks keep the printed accuracies.", "60.52 / 74.39 / 72.60 %",
           f"By share of the backbones within {REACHED_PP:g} pp.", _table2_accuracy),
    _claim("table2-ep-mflops", "§V-B, Table II", "A-table2-ep-architectures",
           "With the Exit Predictor the CIFAR-100 networks cost the printed on-device MFLOPs.", "13.27 / 67.30 / 41.67",
           "By share of the backbones within 5 % (our reading: lambda = 0.95).", _table2_mflops),
]  # fmt: skip
FIG9_THREE_EXITS = [
    _claim("fig9-three-exits", "§V-B, Fig. 9", "A-fig9-three-exits",
           "With three early exits (ResNet44 / CIFAR-100) the Exit Predictor still saves significantly.",
           "significant improvements",
           f"By share of the thresholds where the EP saves at least {GREAT} at no worse than -{NEGLIGIBLE_PP:g} pp.",
           _fig9),
]  # fmt: skip
FIG10_BANDWIDTH = [
    _claim("fig10-codec", "§V-C", "A-fig10-bandwidth",
           "The feature codec (compression ratio 64) costs less than 0.5 % accuracy.", "< 0.5 pp",
           "Notebook 19's test: the codec lowers the last exit's accuracy by less than 0.5 pp.",
           _fig10("compression costs")),
    _claim("fig10-static-violate", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "At low bandwidth the three static methods cannot meet the 30 ms requirement.", "violated at low bandwidth",
           "By share of Backbone, EE (Static) and EE+EP (Static) violating tau at 0.1 Mbit/s.",
           _fig10("Backbone violates", "EE (Static) violates", "EE+EP (Static) violates")),
    _claim("fig10-adaptive-meet", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "The four adaptive methods always meet the latency requirement.", "every bandwidth 0.1-100 Mbit/s",
           "By share of the adaptive methods meeting tau at every bandwidth of the sweep.",
           _fig10("EE (Adaptive) meets", "EE (Adaptive, Pruning) meets", "EE+Oracle (Adaptive) meets", "EE+EP (Adaptive) meets")),
    _claim("fig10-ep-over-ee", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "At 0.1-1 Mbit/s, EE+EP (Adaptive) is more accurate than EE (Adaptive).", "higher accuracy",
           "Notebook 19's test: EE+EP (Adaptive) ahead on average over 0.1-1 Mbit/s.",
           _fig10("EE+EP (Adaptive) > EE (Adaptive)")),
    _claim("fig10-oracle-bound", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "The idealised EE+Oracle (Adaptive) bounds EE+EP (Adaptive) from above.", "better latency and accuracy",
           "Notebook 19's test: the oracle ahead or equal at 90 % of the bandwidths or more.", _fig10("EE+Oracle (Adaptive) >=")),
    _claim("fig10-converge", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "Above 1 Mbit/s all adaptive methods converge to the highest accuracy.", "converge",
           "Notebook 19's test: above 1 Mbit/s the adaptive methods (pruning aside) lie within 1 pp of one another.",
           _fig10("above 1 Mbit/s the adaptive methods converge")),
    _claim("fig10-ep-lower-latency", "§V-C, Fig. 10", "A-fig10-bandwidth",
           "Above 1 Mbit/s the Exit Predictor gives lower latency than EE (Adaptive).", "lower latency",
           "Notebook 19's test: EE+EP (Adaptive) no slower at 90 % of those bandwidths or more.",
           _fig10("above 1 Mbit/s EE+EP (Adaptive) has lower latency")),
]  # fmt: skip
CLAIMS = [
    *SEC3_MOTIVATION,
    *FIG3_LIGHT_EXITS,
    *ARCHITECTURE_TABLES,
    *TABLE1_ACCURACY,
    *FIG7_EXIT_PREDICTOR,
    *FIG8_PRUNING_RATIOS,
    *TABLE2_EP_ARCHITECTURES,
    *FIG9_THREE_EXITS,
    *FIG10_BANDWIDTH,
]
