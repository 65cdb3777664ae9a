"""Our own claims, beyond the papers, registered and measured like theirs (one more, on the simulator against the
real runtime, is in :data:`.paper_b.FIG1_REAL_MODE`, the list of the notebook that measures it).

Notebook ``33_B_beyond_einet``'s (:data:`BEYOND_EINET`) are measured on the table ``B-beyond1-einet-gap``: per
network, the optimal static plan, EINet, the robust planner (:mod:`earlyexit.paper_b.robust`) and EINet's exact
planner on CS-Predictors trained to their plateau (:func:`earlyexit.paper_b.baselines.predictor_study`) on the scored
half, with gains over the static plan and their standard errors over the scored samples (pp, paired).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .registry import NOT_SUPPORTED, PARTLY, SUPPORTED, Claim, Result, Tables, by_share

TABLE = "B-beyond1-einet-gap"


def _robust(t: Tables) -> Result:
    df = t[TABLE]
    behind = df[df["robust gain"] < -df["robust se"]]
    ahead = int((df["robust gain"] > df["robust se"]).sum())
    static = int((df["robust weight"] == 0).sum())
    ours = (
        f"not behind on {len(df) - len(behind)} of {len(df)} networks ({ahead} ahead beyond one se; "
        f"{static} fell back to the static plan); robust minus static {df['robust gain'].min():+.2f} to "
        f"{df['robust gain'].max():+.2f} pp"
    )
    diagnosis = ", ".join(
        f"{r.network} {r['robust gain']:+.2f} pp (se {r['robust se']:.2f})" for _, r in behind.iterrows()
    )
    return Result(ours, by_share(len(df) - len(behind), len(df)), diagnosis and f"behind: {diagnosis}")


def _closes(column: str) -> Callable[[Tables], Result]:
    """The rule of the claims that a change closes EINet's gap: the share of the exact planner's summed gap, over the
    networks where it is behind the optimal static plan, that ``column`` (the change's gain, pp) closes, counted only
    beyond one standard error of that sum (the networks' ``<column> se`` added in quadrature)."""

    def measure(t: Tables) -> Result:
        df = t[TABLE]
        lost = df[df["EINet exact gain"] < 0]
        gap, closed = -lost["EINet exact gain"].sum(), lost[column].sum()
        se = float(np.sqrt((lost[f"{column} se"] ** 2).sum()))
        share = closed / gap if gap > 0 else 0.0
        ours = (
            f"closes {share:.0%} of the exact planner's gap ({closed:+.2f} pp, se {se:.2f}, of {gap:.2f} pp summed "
            f"over the {len(lost)} networks where it is behind; per network {df[column].min():+.2f} to "
            f"{df[column].max():+.2f} pp)"
        )
        verdict = NOT_SUPPORTED if closed <= se else SUPPORTED if share >= 0.5 else PARTLY
        return Result(ours, verdict if len(lost) else SUPPORTED)

    return measure


_RULE = ("SUPPORTED if it closes at least half of the exact planner's summed gap where it is behind the static plan; "
         "PARTLY if it closes some, beyond one standard error of the sum; NOT SUPPORTED if what it closes is within "
         "that error or it widens the gap. Per network the error is the two plans' own paired errors against the "
         "static plan added in quadrature, an upper bound on the error of their difference (their errors correlate "
         "positively on the same samples).")  # fmt: skip


# One list per figure notebook, named after it: the notebook imports its own list and reports it
# (earlyexit.claims.report), so that its figure stamp covers only the claims it shows and editing a claim
# reruns only that notebook. CLAIMS is the registry, in the order of the README.
BEYOND_EINET = [
    Claim("ours-robust-never-below-static", "ours", "beyond §VI-B1, Table II", TABLE,
          "The robust planner (calibrated, shrunk scores; weight chosen on held-out samples) is never below the "
          "optimal static plan.", "(ours)",
          "By share of the networks where the robust planner is not behind the optimal static plan by more than one "
          "standard error of the paired difference over the scored samples.", _robust),
    Claim("ours-calibration-closes", "ours", "beyond §VI-B1, Table II", TABLE,
          "Calibrating the exits' confidences (isotonic maps fitted on held-out samples) closes EINet's gap to the "
          "optimal static plan.", "(ours)", _RULE, _closes("calibration closes")),
    Claim("ours-plateau-predictor-closes", "ours", "beyond §IV-C3, Table II", TABLE,
          "A CS-Predictor trained to its validation plateau (early stopping on held-out samples of its fitting half) "
          "closes EINet's gap to the optimal static plan.", "(ours)", _RULE, _closes("plateau closes")),
    Claim("ours-training-split-predictor-closes", "ours", "beyond §IV-C3, Table II", TABLE,
          "A CS-Predictor fitted on the training split's CS-profile (ten times the samples), to its plateau, closes "
          "EINet's gap to the optimal static plan.", "(ours)", _RULE, _closes("training split closes")),
]  # fmt: skip
CLAIMS = [*BEYOND_EINET]
