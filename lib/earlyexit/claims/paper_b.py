"""Paper B's claims (§VI) and one of ours (real mode against the simulator, Fig. 1's notebook), each measured
on its notebook's result table.

Simulated accuracies are means over runs of random preemption: a difference within the larger run-to-run
spread (standard deviation over runs) of the two methods compared, read from the network's derived
comparison, counts as level. Where the paper's words are loose ("nearly 100 times", "approximately 5 %",
"around 20 times longer"), half of the printed number is the bar for SUPPORTED.
"""

from __future__ import annotations

import pandas as pd

from . import diagnosis as why
from .registry import (
    NOT_SUPPORTED,
    PARTLY,
    SUPPORTED,
    UNTESTABLE,
    Claim,
    Result,
    Tables,
    at_least,
    by_share,
    diagnoses,
    listing,
)

#: Fig. 11: the paper's bar for "very close" ("overall variation less than 0.5 %"), also used for "minimal".
CLOSE_PP = 0.5
COMPARISON = "comparison-uniform.csv"


def _spread(t: Tables, model: str, dataset: str, *methods: str) -> float:
    """The largest run-to-run spread (pp) of ``methods`` (name prefixes) in the network's derived comparison."""
    try:
        df = pd.read_csv(t.derived(why.B_MODELS.get(model, model), dataset, COMPARISON))
    except (OSError, ValueError):
        return 0.0
    rows = df[df.method.str.startswith(methods)]
    return float(rows.spread.max()) if len(rows) else 0.0


def _comparison(t: Tables, model: str, dataset: str) -> pd.DataFrame | None:
    try:
        return pd.read_csv(t.derived(why.B_MODELS.get(model, model), dataset, COMPARISON)).set_index("method")
    except (OSError, ValueError):
        return None


def _static_method(plan: str) -> str:
    return f"static {plan}"


def _network(model: str, dataset: str) -> str:
    return why.network(why.B_MODELS.get(model, model), dataset)


def _training(t: Tables, pairs) -> str:
    seen = dict.fromkeys((why.B_MODELS.get(m, m), d) for m, d in pairs)
    return diagnoses(*(why.training(t, m, d) for m, d in list(seen)[:4]))


def _range(values: pd.Series) -> str:
    return f"{values.min():+.2f} to {values.max():+.2f} pp"


# --------------------------------------------------------------------------------------------------- Table I


def _table1(t: Tables) -> Result:
    df = t["B-table1-search-time"]
    avg = df[df.statistic == "avg"].set_index(["task", "implementation"])
    tasks = ("expectation", "hybrid m=5")
    ratio = {
        column: {task: avg[column][task, "Python"] / avg[column][task, "C (ctypes)"] for task in tasks}
        for column in ("paper", "ours")
    }
    hits = sum(ratio["ours"][task] >= ratio["paper"][task] / 2 for task in tasks)
    ours = listing(f"{task} {ratio['ours'][task]:.0f}x (paper {ratio['paper'][task]:.0f}x)" for task in tasks)
    return Result(ours, by_share(hits, len(tasks)), "" if hits == len(tasks) else why.timing())


# -------------------------------------------------------------------------------------------- Fig. 8, Table II


def _fig8_static(t: Tables) -> Result:
    df = t["B-fig8-static-plans"]
    levels = [
        _spread(t, m, d, "EINet hybrid", _static_method(p)) for m, d, p in zip(df.model, df.dataset, df["static plan"])
    ]
    ahead = df.ours > pd.Series(levels, index=df.index)
    failing = df[~ahead]
    return Result(
        f"EINet ahead of {int(ahead.sum())} of {len(df)} static plans ({_range(df.ours)})",
        by_share(int(ahead.sum()), len(df)),
        _training(t, zip(failing.model, failing.dataset)),
    )


#: Marks a pair's number in "ours" that the verdict leaves out because the pair was not trained alike.
NOT_COUNTED = " (trained differently: not counted)"


def _like_for_like(t: Tables, models: tuple[str, str], dataset: str) -> str:
    """Why the pair of Paper B display names ``models`` on ``dataset`` is not a fair comparison ("" if it is)."""
    return why.unequal_training(t, tuple(why.B_MODELS.get(m, m) for m in models), dataset)


def _fig8_branches(t: Tables) -> Result:
    df = t["B-fig8-static-plans"].drop_duplicates(["dataset", "model"]).set_index(["dataset", "model"]).EINet
    parts, unequal, hits, total = [], [], 0, 0
    for dataset in df.index.get_level_values(0).unique():
        if (dataset, "FlexVGG-16") in df.index and (dataset, "VGG-16") in df.index:
            gain = df[dataset, "VGG-16"] - df[dataset, "FlexVGG-16"]
            reason = _like_for_like(t, ("FlexVGG-16", "VGG-16"), dataset)
            parts.append(f"{why.DATASETS[dataset]} {gain:+.2f} pp" + (NOT_COUNTED if reason else ""))
            if reason:
                unequal.append(reason)
                continue
            level = max(_spread(t, m, dataset, "EINet hybrid") for m in ("FlexVGG-16", "VGG-16"))
            hits, total = hits + (gain > level), total + 1
    return Result(
        f"VGG-16 (14 exits) over FlexVGG-16 (5): {listing(parts)}", by_share(hits, total), diagnoses(*unequal)
    )


def _table2(t: Tables) -> Result:
    df = t["B-table2-optimal-static"].dropna(subset=["paper"])
    levels = pd.Series(
        [_spread(t, m, d, "EINet hybrid", "optimal static") for m, d in zip(df.model, df.dataset)], index=df.index
    )
    ahead = df.ours > levels
    behind = df[df.ours < -levels]
    # the CS-Predictor's part: planning on the true confidences (oracle + exact) instead of its scores
    oracle_behind = int((behind["oracle + exact"] < behind.static).sum())
    diagnosis = (
        f"with true confidences (oracle + exact) EINet stays below the static plan on {oracle_behind} of the "
        f"{len(behind)} rows it loses: the CS-Predictor is not the whole cause"
        if len(behind)
        else ""
    )
    return Result(
        f"EINet ahead on {int(ahead.sum())} of {len(df)} rows ({_range(df.ours)})",
        by_share(int(ahead.sum()), len(df)),
        diagnosis,
    )


# ------------------------------------------------------------------------------------------------------ Fig. 1

REAL_MODE = "B-fig1-real-mode"


def _fig1(t: Tables) -> Result:
    df = t[REAL_MODE]
    classic, multi = df.iloc[0], df.iloc[1:]
    more = multi[multi["more results (pp)"] > multi["more results se (pp)"]]
    shares = ", ".join(f"{r.policy} {r['result returned (%)']:.1f} %" for _, r in multi.iterrows())
    ours = (
        f"in real mode, one uniform preemption per image: {classic.policy} returns a result for "
        f"{classic['result returned (%)']:.1f} % of the images, the multi-exit runs for {shares}"
    )
    return Result(ours, by_share(len(more), len(multi)))


def _simulator(t: Tables) -> Result:
    df = t[REAL_MODE]
    se = df["real minus simulated se (pp)"]
    apart = df[df["real minus simulated (pp)"].abs() > 2 * se]
    gaps = ", ".join(f"{r.policy} {r['real minus simulated (pp)']:+.2f} pp (se {r['real minus simulated se (pp)']:.2f})"
                     for _, r in df.iterrows())  # fmt: skip
    ours = f"real minus simulated accuracy on the same images: {gaps}"
    below = len(apart) > 0 and bool((df["real minus simulated (pp)"] < 0).all())
    diagnosis = "real mode is below the simulation for every policy" if below else ""
    return Result(ours, by_share(len(df) - len(apart), len(df)), diagnosis)


# ------------------------------------------------------------------------------------------------------ Fig. 9


def _fig9(column: str, others: str):
    def measure(t: Tables) -> Result:
        df = t["B-fig9-dynamic-plans"]
        levels = [
            _spread(t, m, d, "EINet hybrid", others if others else str(b))
            for m, d, b in zip(df.model, df.dataset, df["best other"])
        ]
        ahead = df[column] > pd.Series(levels, index=df.index)
        failing = df[~ahead]
        return Result(
            f"EINet ahead on {int(ahead.sum())} of {len(df)} networks ({_range(df[column])})",
            by_share(int(ahead.sum()), len(df)),
            _training(t, zip(failing.model, failing.dataset)),
        )

    return measure


def _fig9_thresholds(t: Tables) -> Result:
    df = t["B-fig9-dynamic-plans"]
    hits, total = 0, 0
    for model, dataset in zip(df.model, df.dataset):
        table = _comparison(t, model, dataset)
        if table is None:
            continue
        rows = table[table.index.str.startswith("threshold")].sort_index()
        steps = rows.accuracy.diff().dropna()
        hits, total = hits + bool((steps >= -rows.spread.max()).all()), total + 1
    return Result(f"non-decreasing in the threshold on {hits} of {total} networks", by_share(hits, total))


# ----------------------------------------------------------------------------------------------------- Fig. 10


def _fig10_gain(against: str, low: float):
    def measure(t: Tables) -> Result:
        df = t["B-fig10-common-networks"]
        gains = df[df["EINet against"] == against].set_index("model").ours
        verdict = SUPPORTED if (gains >= low).all() else PARTLY if (gains > 0).any() else NOT_SUPPORTED
        ours = listing(f"{m} {g:+.1f}" for m, g in gains.items())
        failing = [(m, "cifar100") for m, g in gains.items() if g < low]
        return Result(ours, verdict if len(gains) else UNTESTABLE, _training(t, failing))

    return measure


def _einet(t: Tables, dataset: str) -> pd.Series:
    df = t["B-table2-optimal-static"]
    return df[df.dataset == dataset].set_index("model").EINet


def _fig10_finer(t: Tables) -> Result:
    einet = _einet(t, "cifar100")
    pairs = [p for p in [("FlexVGG-16", "VGG-16"), ("MSDNet21", "MSDNet40")] if set(p) <= set(einet.index)]
    gains = [einet[fine] - einet[coarse] for coarse, fine in pairs]
    unequal = [_like_for_like(t, p, "cifar100") for p in pairs]
    levels = [max(_spread(t, m, "cifar100", "EINet hybrid") for m in p) for p in pairs]
    hits = sum(g > lv for g, lv, u in zip(gains, levels, unequal) if not u)
    ours = listing(
        f"{fine} over {coarse} {g:+.2f} pp" + (NOT_COUNTED if u else "")
        for (coarse, fine), g, u in zip(pairs, gains, unequal)
    )
    fair = sum(not u for u in unequal)
    return Result(
        ours, by_share(hits, fair), diagnoses(*unequal, _training(t, [(m, "cifar100") for p in pairs for m in p]))
    )


def _fig10_msdnet(t: Tables) -> Result:
    einet = _einet(t, "cifar100")
    if not {"MSDNet21", "MSDNet40"} <= set(einet.index):
        return Result("not trained", UNTESTABLE)
    gain = einet["MSDNet40"] - einet["MSDNet21"]
    if unequal := _like_for_like(t, ("MSDNet21", "MSDNet40"), "cifar100"):
        return Result(f"{gain:+.2f} pp", UNTESTABLE, unequal)
    level = max(_spread(t, m, "cifar100", "EINet hybrid") for m in ("MSDNet21", "MSDNet40"))
    verdict = at_least(gain, 2.5, level + 1e-9)
    diagnosis = "" if verdict == SUPPORTED else _training(t, [("MSDNet21", "cifar100"), ("MSDNet40", "cifar100")])
    return Result(f"{gain:+.2f} pp", verdict, diagnosis)


# ------------------------------------------------------------------------------------------------ Figs. 11-13


def _fig11_close(t: Tables) -> Result:
    df = t["B-fig11-expectation"]
    close = df.gap_pp.abs() <= CLOSE_PP
    diagnosis = "" if close.all() else why.overconfidence(t, "msdnet40", "cifar100")
    return Result(f"largest gap {df.gap_pp.abs().max():.2f} pp", by_share(int(close.sum()), len(df)), diagnosis)


def _fig11_skip2(t: Tables) -> Result:
    df = t["B-fig11-expectation"].set_index("skipped_k").ours
    gain = df[2] - df[0]
    level = _spread(t, "MSDNet40", "cifar100", "static 100%")
    return Result(f"{gain:+.2f} pp", SUPPORTED if gain > level else NOT_SUPPORTED)


def _fig12(t: Tables) -> pd.DataFrame:
    return t["B-fig12-hybrid"].set_index("m")


def _fig12_near_optimal(t: Tables) -> Result:
    gaps = _fig12(t).gap_to_exact_pp.loc[[4, 5]]
    return Result(
        f"m = 4, 5: {listing(f'{g:.3f} pp' for g in gaps)} below the exact optimum",
        by_share(int((gaps <= CLOSE_PP).sum()), 2),
    )


def _fig12_rises(t: Tables) -> Result:
    df = _fig12(t)
    change = df.ours.iloc[-1] - df.ours.iloc[0]
    diagnosis = f"greedy alone (m = 0) is already {df.gap_to_exact_pp.iloc[0]:.3f} pp from the exact optimum"
    return Result(
        f"m = 0 -> {df.index[-1]}: {change:+.3f} pp",
        SUPPORTED if change > 0 else NOT_SUPPORTED,
        diagnosis if change <= 0 else "",
    )


def _fig12_time(t: Tables) -> Result:
    df = _fig12(t)
    ratio = df.search_ms.iloc[-1] / df.search_ms.iloc[0]
    return Result(f"m = 0 -> {df.index[-1]}: {ratio:.1f}x", at_least(ratio, 10), "" if ratio >= 10 else why.timing())


def _fig12_greedy(t: Tables) -> Result:
    df = _fig12(t)
    greedy, hybrid = df.gap_to_exact_pp.loc[0], df.gap_to_exact_pp.loc[5]
    return Result(
        f"greedy {greedy:.3f} pp, hybrid m = 5 {hybrid:.3f} pp below the optimum",
        SUPPORTED if greedy > hybrid else NOT_SUPPORTED,
    )


def _fig13(t: Tables) -> pd.DataFrame:
    return t["B-fig13-distributions"].set_index(["distribution", "method"])


def _fig13_minimal(t: Tables) -> Result:
    hybrid = _fig13(t).xs("hybrid m=5", level="method").ours
    spread = hybrid.max() - hybrid.min()
    return Result(f"hybrid m = 5 varies by {spread:.2f} pp", SUPPORTED if spread <= CLOSE_PP else NOT_SUPPORTED)


def _fig13_best(t: Tables) -> Result:
    df = _fig13(t).ours
    level = _spread(t, "MSDNet40", "cifar100", "EINet hybrid")
    hits, parts = 0, []
    for dist in df.index.get_level_values(0).unique():
        rival = max(df[dist, m] for m in ("baseline", "random", "greedy"))
        hits += df[dist, "hybrid m=5"] >= rival - level
        parts.append(f"{dist} {df[dist, 'hybrid m=5'] - rival:+.2f} pp")
    diagnosis = "" if hits == len(parts) else why.overconfidence(t, "msdnet40", "cifar100")
    return Result(f"hybrid against the best other: {listing(parts)}", by_share(hits, len(parts)), diagnosis)


def _fig13_random(t: Tables) -> Result:
    df = _fig13(t).search_ms
    ratios = [df[d, "random"] / df[d, "hybrid m=5"] for d in df.index.get_level_values(0).unique()]
    hits = sum(r >= 10 for r in ratios)
    return Result(f"random {listing(f'{r:.0f}x' for r in ratios)} slower", by_share(hits, len(ratios)))


# ------------------------------------------------------------------------------------------- Table III, Fig. 14


def _table3(quantity: str):
    def measure(t: Tables) -> Result:
        df = t["B-table3-activation-cache"]
        rows = df[df.quantity == quantity]
        if quantity == "memory (bytes)":
            hits = int((rows.ours == rows.paper).sum())
            return Result(f"{hits} of {len(rows)} equal", by_share(hits, len(rows)))
        hits = int((rows.verdict == "cache saves time").sum())
        ours = listing(f"{m} {o:+.1f} %" for m, o in zip(rows.model, rows.ours))
        return Result(ours, by_share(hits, len(rows)), "" if hits == len(rows) else why.timing())

    return measure


def _design(t: Tables, row: str) -> tuple[list[str], list[float], list[float]]:
    df = t["B-fig14-design"].set_index("design")
    values = [v.strip() for v in str(df.loc[row, "values"]).split(",")]
    accuracy = [float(v) for v in str(df.loc[row, "EINet (%)"]).split(" / ")]
    time_ms = [float(v) for v in str(df.loc[row, "T (ms)"]).split(" / ")]
    return values, accuracy, time_ms


def _fig14_blocks(t: Tables) -> Result:
    values, accuracy, _ = _design(t, "blocks")
    best = int(values[accuracy.index(max(accuracy))])
    return Result(f"most accurate: {best} blocks", SUPPORTED if 21 <= best <= 40 else NOT_SUPPORTED)


def _fig14_steps(t: Tables) -> Result:
    values, _, time_ms = _design(t, "step")
    longer = all(b > a for a, b in zip(time_ms, time_ms[1:]))
    return Result(
        f"T {' / '.join(f'{v:.1f}' for v in time_ms)} ms for steps {', '.join(values)}",
        SUPPORTED if longer else NOT_SUPPORTED,
    )


def _fig14_small(t: Tables) -> Result:
    parts, hits = [], 0
    for row in ("base", "channels"):
        values, accuracy, _ = _design(t, row)
        best = values[accuracy.index(max(accuracy))]
        hits += best == values[0]
        parts.append(f"{row}: {best} most accurate")
    return Result(listing(parts), by_share(hits, 2))


def _fig14_branch(compare: str):
    pairs = {"fc": [("1 conv + 1 FC", "1 conv + 2 FC"), ("2 conv + 1 FC", "2 conv + 2 FC")],
             "conv": [("1 conv + 1 FC", "2 conv + 1 FC"), ("1 conv + 2 FC", "2 conv + 2 FC")]}[compare]  # fmt: skip

    def measure(t: Tables) -> Result:
        values, accuracy, time_ms = _design(t, "branch")
        by = dict(zip(values, zip(accuracy, time_ms)))
        index = 0 if compare == "fc" else 1  # more FC: higher accuracy; more conv: longer time
        hits = sum(by[b][index] > by[a][index] for a, b in pairs)
        unit = "pp" if compare == "fc" else "ms"
        ours = listing(f"{a} -> {b}: {by[b][index] - by[a][index]:+.2f} {unit}" for a, b in pairs)
        return Result(ours, by_share(hits, len(pairs)))

    return measure


def _claim(id_: str, where: str, table: str, text: str, paper_value: str, rule: str, measure, shown: str = "") -> Claim:
    return Claim(f"B-{id_}", "B", where, table, text, paper_value, rule, measure, shown)


LEVEL = "differences within the run-to-run spread count as level"
# One list per figure notebook, named after it: the notebook imports its own list and reports it
# (earlyexit.claims.report), so that its figure stamp covers only the claims it shows and editing a claim
# reruns only that notebook. CLAIMS is the registry, in the order of the README.
FIG1_REAL_MODE = [
    _claim("fig1-no-result", "§I, Fig. 1", REAL_MODE,
           "Preempted, a classic network stops with no result, while elastic inference exits with a result.",
           "no result / a result",
           "By share of the multi-exit runs (every branch, EINet) that return a result for more images than the classic "
           "network, beyond one standard error of the paired difference over the images (real mode on this CPU, one "
           "uniform preemption per image).", _fig1),
    Claim("ours-simulator-matches-real-mode", "ours", "beyond §VI, Figs. 1, 2", REAL_MODE,
          "The simulator of Figs. 8-13 (the ET-profile's mean times; search and prediction cost no time) gives the "
          "accuracy that the real runtime reaches on this CPU.", "(ours)",
          "By share of the policies (classic, every branch, EINet) whose real-mode accuracy is within two standard "
          "errors of the simulated one, paired over the same images (each with one uniform preemption in real mode, "
          "twenty simulated).", _simulator),
]  # fmt: skip
TABLE1_SEARCH_TIME = [
    _claim("table1-c-speedup", "§VI-A, Table I", "B-table1-search-time",
           "The search engine in C is nearly 100 times faster than in Python.", "0.0594 -> 0.0003 ms; 4.66 -> 0.128 ms",
           "By share of the two algorithms (expectation, hybrid m = 5) whose C speed-up is at least half the paper's "
           "own for that algorithm (its Table I: 198x and 36x).", _table1),
]  # fmt: skip
FIG8_STATIC_PLANS = [
    _claim("fig8-beats-static", "§VI-B1, Fig. 8", "B-fig8-static-plans",
           "EINet beats the 25 %, 50 % and 100 % static plans on every model and dataset.", "+0.13 to +16.5 %",
           f"By share of the (network, plan) pairs where EINet is ahead ({LEVEL}).", _fig8_static),
    _claim("fig8-more-branches", "§VI-B1, Fig. 8", "B-fig8-static-plans",
           "More branches on the same backbone (VGG-16 with 14 exits against FlexVGG-16 with 5) raise the accuracy.",
           "higher accuracy",
           f"By share of the datasets where both trained one recipe on which VGG-16 is ahead under EINet ({LEVEL}).",
           _fig8_branches),
]  # fmt: skip
TABLE2_OPTIMAL_STATIC = [
    _claim("table2-beats-optimal-static", "§VI-B1, Table II", "B-table2-optimal-static",
           "EINet beats the optimal static plan on all twelve networks.", "+0.01 to +1.79 %",
           f"By share of Table II's rows where EINet is ahead ({LEVEL}).", _table2),
]  # fmt: skip
FIG9_DYNAMIC_PLANS = [
    _claim("fig9-beats-dynamic", "§VI-B2, Fig. 9", "B-fig9-dynamic-plans",
           "EINet beats the other dynamic plans (confidence thresholds, random search).", "+0.79 to +4.1 %",
           f"By share of the networks where EINet is ahead of the best other dynamic plan ({LEVEL}).",
           _fig9("ours", "")),
    _claim("fig9-over-every-branch", "§VI-B2, Fig. 9", "B-fig9-dynamic-plans",
           "EINet improves on the static plan that runs every branch by about 1-4 %.", "+1 to +4 %",
           f"By share of the networks where EINet is ahead of running every branch ({LEVEL}).",
           _fig9("EINet over every branch", "static 100%")),
    _claim("fig9-higher-threshold", "§VI-B2, Fig. 9", "B-fig9-dynamic-plans",
           "Raising the confidence threshold improves the confidence-based dynamic plan.", "better results",
           f"By share of the networks whose threshold plans do not lose accuracy as the threshold rises ({LEVEL}).",
           _fig9_thresholds),
]  # fmt: skip
FIG10_COMMON_NETWORKS = [
    _claim("fig10-over-classic", "§VI-B3, Fig. 10", "B-fig10-common-networks",
           "EINet beats the classic single-exit network by 40.4-61.5 %.", "+40.4 to +61.5 %",
           "SUPPORTED if every gain reaches the paper's lowest; PARTLY if EINet is ahead on some network.",
           _fig10_gain("classic", 40.4)),
    _claim("fig10-over-compressed", "§VI-B3, Fig. 10", "B-fig10-common-networks",
           "EINet beats the compressed single-exit network by 38.5-58.2 %.", "+38.5 to +58.2 %",
           "SUPPORTED if every gain reaches the paper's lowest; PARTLY if EINet is ahead on some network.",
           _fig10_gain("compressed", 38.5)),
    _claim("fig10-over-me-nn", "§VI-B3, Fig. 10", "B-fig10-common-networks",
           "EINet beats the multi-exit network without a planner by 0.8-1.5 %.", "+0.8 to +1.5 %",
           "SUPPORTED if every gain reaches the paper's lowest; PARTLY if EINet is ahead on some network.",
           _fig10_gain("ME-NN", 0.8)),
    _claim("fig10-finer-grained", "§VI-B3, Fig. 10", "B-table2-optimal-static",
           "The more fine-grained network is more accurate under EINet (VGG-16 over FlexVGG-16, MSDNet-40 over MSDNet-21).",
           "higher accuracy",
           f"By share of the pairs on CIFAR-100 trained with one recipe where the finer network is ahead ({LEVEL}).",
           _fig10_finer, shown="B-fig10-common-networks"),
    _claim("fig10-msdnet40-5pct", "§VI-B3, Fig. 10", "B-table2-optimal-static",
           "MSDNet-40 is about 5 % more accurate than MSDNet-21 in elastic inference.", "~ +5 %",
           "SUPPORTED from +2.5 pp (half the paper's); PARTLY if ahead beyond the run-to-run spread; "
           "UNTESTABLE if the two were trained with different recipes.", _fig10_msdnet, shown="B-fig10-common-networks"),
]  # fmt: skip
FIG11_EXPECTATION = [
    _claim("fig11-expectation-close", "§VI-C1, Fig. 11", "B-fig11-expectation",
           "The accuracy expectation lies within 0.5 % of the measured accuracy for all 11 plans (MSDNet-40, CIFAR-100).",
           "< 0.5 %", f"By share of the plans whose expectation (on confidences) is within {CLOSE_PP} pp.", _fig11_close),
    _claim("fig11-skip-two", "§VI-C1, Fig. 11", "B-fig11-expectation",
           "Skipping two exits uniformly beats running every branch.", "skip 2 > skip 0",
           "SUPPORTED if skipping two is ahead beyond the run-to-run spread of running every branch.", _fig11_skip2),
]  # fmt: skip
FIG12_HYBRID = [
    _claim("fig12-near-optimal", "§VI-C2, Fig. 12", "B-fig12-hybrid",
           "Enumerating four or five branches, then greedy, is near-optimal.", "near-optimal",
           f"By share of m = 4, 5 within {CLOSE_PP} pp of the exact optimum's expectation.", _fig12_near_optimal),
    _claim("fig12-rises-with-m", "§VI-C2, Fig. 12", "B-fig12-hybrid",
           "The more branches enumerated, the higher the accuracy expectation found.", "increases slightly",
           "SUPPORTED if the expectation at the largest m exceeds greedy's (m = 0).", _fig12_rises),
    _claim("fig12-time-explodes", "§VI-C2, Fig. 12", "B-fig12-hybrid",
           "The search time rises exponentially with the number of branches enumerated.", "exponential",
           "SUPPORTED if the largest m takes at least 10x as long as m = 0.", _fig12_time),
    _claim("fig12-greedy-local", "§VI-C2, Fig. 12", "B-fig12-hybrid",
           "Greedy search alone may fall into a local optimum that hybrid search avoids.", "greedy below hybrid",
           "SUPPORTED if greedy's expectation is further from the exact optimum than hybrid m = 5's.", _fig12_greedy),
]  # fmt: skip
FIG13_DISTRIBUTIONS = [
    _claim("fig13-distributions-minimal", "§VI-C3, Fig. 13", "B-fig13-distributions",
           "The preemption-time distribution has minimal impact on elastic inference.", "minimal impact",
           f"SUPPORTED if hybrid search's accuracy varies by at most {CLOSE_PP} pp across the three distributions.",
           _fig13_minimal),
    _claim("fig13-hybrid-best", "§VI-C3, Fig. 13", "B-fig13-distributions",
           "Hybrid search consistently finds a better plan than baseline, random and greedy search.", "always better",
           f"By share of the distributions where hybrid m = 5 is not behind the best of the others ({LEVEL}).",
           _fig13_best),
    _claim("fig13-random-slower", "§VI-C3, Fig. 13", "B-fig13-distributions",
           "Random search (10,000 plans) takes about 20 times longer than hybrid search.", "~20x",
           "By share of the distributions where random search takes at least 10x as long.", _fig13_random),
]  # fmt: skip
TABLE3_ACTIVATION_CACHE = [
    _claim("table3-cache-faster", "§VI-C4, Table III", "B-table3-activation-cache",
           "The activation cache speeds the CS-Predictors up by 3.08-4 %.", "3.08 to 4 %",
           "By share of the models whose 95 % interval of the time saved lies above zero.", _table3("time reduced (%)")),
    _claim("table3-cache-memory", "§VI-C4, Table III", "B-table3-activation-cache",
           "The activation cache takes 1-16 KB.", "1036 to 16544 B",
           "By share of the models whose cache takes the printed bytes.", _table3("memory (bytes)")),
]  # fmt: skip
FIG14_DESIGN = [
    _claim("fig14-blocks", "§VI-D1, Fig. 14(a)", "B-fig14-design",
           "21 to 40 blocks are nearly optimal for MSDNet.", "21-40 blocks",
           "SUPPORTED if the most accurate block count lies in 21-40.", _fig14_blocks),
    _claim("fig14-steps-longer", "§VI-D1, Fig. 14(a)", "B-fig14-design",
           "More steps lengthen the total inference time.", "longer T",
           "SUPPORTED if T increases with every added step.", _fig14_steps),
    _claim("fig14-small-base-channels", "§VI-D1, Fig. 14(a)", "B-fig14-design",
           "Smaller base and channel values are preferable.", "smaller preferable",
           "By share of base and channels whose smallest value is the most accurate.", _fig14_small),
    _claim("fig14-more-fc", "§VI-D2, Fig. 14(b)", "B-fig14-design",
           "More fully connected layers in a branch raise the final accuracy.", "higher accuracy",
           "By share of the two conv depths where the second FC layer raises EINet's accuracy.", _fig14_branch("fc")),
    _claim("fig14-more-conv", "§VI-D2, Fig. 14(b)", "B-fig14-design",
           "More convolutional layers in a branch lengthen the inference time.", "longer time",
           "By share of the two FC depths where the second conv layer lengthens T.", _fig14_branch("conv")),
]  # fmt: skip
CLAIMS = [
    *FIG1_REAL_MODE,
    *TABLE1_SEARCH_TIME,
    *FIG8_STATIC_PLANS,
    *TABLE2_OPTIMAL_STATIC,
    *FIG9_DYNAMIC_PLANS,
    *FIG10_COMMON_NETWORKS,
    *FIG11_EXPECTATION,
    *FIG12_HYBRID,
    *FIG13_DISTRIBUTIONS,
    *TABLE3_ACTIVATION_CACHE,
    *FIG14_DESIGN,
]
