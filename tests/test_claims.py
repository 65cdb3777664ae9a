"""The claims registry: well formed, measured on every shipped table, verdicts that follow the data, and the
README's scoreboard and the book's page generated from it."""

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from earlyexit import claims, pipeline
from earlyexit.claims import registry
from earlyexit.claims.paper_b import NOT_COUNTED
from earlyexit.claims.registry import NOT_SUPPORTED, PARTLY, SUPPORTED, UNTESTABLE
from earlyexit.paper_b import predictor


def test_every_claim_is_well_formed_and_has_a_unique_id():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in claims.CLAIMS:
        assert c.paper in claims.PAPERS and c.id.startswith(f"{c.paper}-")
        assert c.text and c.paper_value and c.rule and c.where
        assert (pipeline.ROOT / "figures" / f"{c.table}.csv").exists(), c.table


def test_every_claim_is_shown_by_the_notebook_of_its_table_from_the_notebook_s_own_list():
    """Each figure notebook imports one list of the registry and reports it: its claims are those of the tables it
    writes, and the lists together are the registry."""
    shown = []
    for path in sorted((pipeline.ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for node in ast.walk(ast.parse(cell.source)) if cell.cell_type == "code" else ():
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "report":
                    imported = {
                        alias.name: importlib.import_module(n.module)
                        for n in ast.walk(ast.parse(cell.source))
                        if isinstance(n, ast.ImportFrom) and n.module.startswith("earlyexit.claims")
                        for alias in n.names
                    }
                    listed = getattr(imported[node.args[0].id], node.args[0].id)
                    assert {claims.notebooks()[c.notebook_table] for c in listed} == {path.name}, path.name
                    shown += listed
    assert sorted(c.id for c in shown) == sorted(c.id for c in claims.CLAIMS)


def test_editing_one_claim_reruns_only_the_notebook_that_shows_it(tmp_path):
    """A figure's stamp covers the claims its notebook reports, not the whole registry: in a scratch copy of the
    library, rewording Table III's rule stales Table III's notebook and no other figure."""
    root = tmp_path / "repo"
    shutil.copytree(pipeline.ROOT / "lib", root / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("artifacts", "notebooks", "figures", "pipeline.toml", "tiers.toml"):
        (root / name).symlink_to(pipeline.ROOT / name)
    source = root / "lib" / "earlyexit" / "claims" / "paper_b.py"
    rule = "By share of the models whose cache takes the printed bytes."
    assert rule in source.read_text()
    source.write_text(
        source.read_text().replace(rule, "By share of the models whose cache takes exactly the printed bytes.")
    )
    listed = subprocess.run(
        [sys.executable, "-m", "earlyexit.pipeline", "--profile", "cpu", "--list", "--figures-only"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "lib")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    figures = {job.name for job in pipeline.jobs("cpu") if job.kind == "figure"}
    stale = {line.split()[1] for line in listed if line.split()[1] in figures and not line.endswith("current")}
    assert stale == {"21_B_table3_activation_cache"}


def test_a_figure_stage_is_after_every_stage_whose_table_its_claims_read(monkeypatch):
    """``--jobs`` runs figure stages at once: a notebook whose claims read another notebook's result table names
    that notebook's stage in its ``after`` (pipeline.toml), so that it runs once the table is made."""
    read: dict[str, set[str]] = {}
    real, current = registry.Tables.__getitem__, []

    def recorded(self, name):
        read.setdefault(current[-1].notebook_table, set()).add(name)
        return real(self, name)

    monkeypatch.setattr(registry.Tables, "__getitem__", recorded)
    source = claims.tables("cpu")
    for claim in claims.CLAIMS:
        current.append(claim)
        claim.result(source)
    owner, after = claims.notebooks(), pipeline._figures_after()
    stage_of = {Path(s["notebook"]).name: s["id"] for s in pipeline.load_stages()}
    for shown, names in read.items():
        stage = stage_of[owner[shown]]
        needed = {stage_of[owner[name]] for name in names} - {stage}
        assert needed <= set(after[stage]), f"pipeline.toml: stage {stage!r} needs after = {sorted(needed)}"
    assert read["B-fig10-common-networks"] > {"B-fig10-common-networks"}  # a claim reading another table was seen


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return claims.evaluate(claims.tables("cpu"), claims.CLAIMS)


def test_every_shipped_claim_is_measured(shipped):
    """No claim of the shipped profile misses its table or fails to compute (UNTESTABLE only by its rule)."""
    assert set(shipped.verdict) <= set(registry.VERDICTS)
    broken = shipped[shipped.ours.isin(["no result table", "not measurable"])]
    assert broken.empty, broken[["id", "diagnosis"]].to_string()
    failing = shipped[shipped.verdict.isin([NOT_SUPPORTED, PARTLY])]
    assert (failing.diagnosis.str.len() > 0).mean() > 0.5  # most failures come with a measured reason


def test_the_readme_scoreboard_and_the_book_pages_are_generated():
    """Run `python -m earlyexit.claims --write` after regenerating figures."""
    from earlyexit.claims.__main__ import generated

    for path, text in generated().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m earlyexit.claims --write"


def test_the_scoreboard_says_what_share_of_their_papers_epochs_the_networks_trained(monkeypatch):
    """AlexNet (Paper A: 220 epochs) after 22 and FlexVGG-16 (Paper B: 300) after 3: 10 % and 1 %."""
    epochs = {"alexnet": 22, "flexvgg16": 3}
    monkeypatch.setattr(pipeline, "trained", lambda profile: [("alexnet", "cifar10"), ("flexvgg16", "mnist")])
    monkeypatch.setattr(claims.artifacts, "read_manifest", lambda folder: {"epochs": epochs[folder.name.split("-")[0]]})
    first = claims.scoreboard(pd.DataFrame(columns=claims.COLUMNS), "cpu").splitlines()[0]
    assert first.endswith(
        " Its 2 networks were trained for 1.0% to 10% of their paper's epochs (the compute ledger gives each)."
    )
    monkeypatch.setattr(pipeline, "trained", lambda profile: [])
    assert claims.scoreboard(pd.DataFrame(columns=claims.COLUMNS), "cpu").splitlines()[0].endswith("--profile cpu`.")


@pytest.mark.parametrize(
    ("hits", "total", "verdict"),
    [(3, 3, SUPPORTED), (1, 3, PARTLY), (0, 3, NOT_SUPPORTED), (0, 0, UNTESTABLE)],
)
def test_share_rule(hits, total, verdict):
    assert registry.by_share(hits, total) == verdict


def _copy(tmp_path, edit) -> claims.Tables:
    shutil.copytree(
        pipeline.ROOT / "figures", tmp_path, ignore=shutil.ignore_patterns("*.png", "*.md"), dirs_exist_ok=True
    )
    edit(tmp_path)
    return claims.tables("cpu", tmp_path)


def _verdict(source: claims.Tables, claim_id: str) -> str:
    df = claims.evaluate(source, claims.CLAIMS)
    return df.set_index("id").loc[claim_id, "verdict"]


@pytest.mark.parametrize(("gain", "verdict"), [(3.0, SUPPORTED), (-3.0, NOT_SUPPORTED)])
def test_a_verdict_follows_the_measured_numbers(tmp_path, gain, verdict):
    def edit(folder):
        path = folder / "B-table2-optimal-static.csv"
        df = pd.read_csv(path)
        df["ours"] = gain
        df.to_csv(path, index=False)

    assert _verdict(_copy(tmp_path, edit), "B-table2-beats-optimal-static") == verdict


# per network: the exact planner 1 pp behind the static plan, the change's gain, its se; under 100 networks a gain of
# 0.01 pp each sums to less than one se of the sum (0.1 pp times the root of their number): level, not closing
@pytest.mark.parametrize(
    ("closed", "se", "verdict"),
    [
        (1.0, 0.1, SUPPORTED),
        (0.2, 0.1, PARTLY),
        (0.01, 0.1, NOT_SUPPORTED),
        (0.01, 0.0, PARTLY),
        (-0.2, 0.1, NOT_SUPPORTED),
    ],
)
@pytest.mark.parametrize("claim", ["ours-plateau-predictor-closes", "ours-calibration-closes"])
def test_a_change_closes_einets_gap_by_the_share_of_the_summed_gap_beyond_its_se(tmp_path, claim, closed, se, verdict):
    column = {"ours-plateau-predictor-closes": "plateau closes", "ours-calibration-closes": "calibration closes"}

    def edit(folder):
        path = folder / "B-beyond1-einet-gap.csv"
        df = pd.read_csv(path)
        df["EINet exact gain"] = -1.0
        df[column[claim]] = closed
        df[f"{column[claim]} se"] = se
        df.to_csv(path, index=False)

    assert _verdict(_copy(tmp_path, edit), claim) == verdict


class _Retrained:
    """A shipped artifact whose manifest says it trained (and annealed) for ``epochs``: its predictions as they are."""

    def __init__(self, run, epochs: int) -> None:
        params = {**run.manifest["params"], "epochs": epochs, "anneal_epochs": epochs}
        self.manifest = {**run.manifest, "params": params}
        self._run = run

    def __getitem__(self, key):
        return self._run[key]


def _trained_for(epochs: dict[str, int]) -> claims.Tables:
    """The shipped results, with the networks named in ``epochs`` said to have trained that long."""
    source = claims.tables("cpu")
    shipped = source.artifact
    source.artifact = lambda m, d: _Retrained(shipped(m, d), epochs[m]) if m in epochs else shipped(m, d)
    return source


@pytest.mark.parametrize(
    ("claim", "pair", "verdicts", "marked"),
    [
        ("B-fig8-more-branches", ("flexvgg16", "vgg16_finegrained"), {UNTESTABLE}, True),  # no dataset's pair counts
        ("B-fig10-finer-grained", ("msdnet21", "msdnet40"), {SUPPORTED, NOT_SUPPORTED}, True),  # one pair of two
        ("B-fig10-msdnet40-5pct", ("msdnet21", "msdnet40"), {UNTESTABLE}, False),  # one pair: its verdict says it
    ],
)
def test_networks_compared_after_different_training_are_shown_but_not_counted(claim, pair, verdicts, marked):
    coarse, fine = pair
    alike = dict.fromkeys(("flexvgg16", "vgg16_finegrained", "msdnet21", "msdnet40"), 50)  # every pair of the claims
    fair = claims.evaluate(_trained_for(alike), claims.CLAIMS).set_index("id").loc[claim]
    row = claims.evaluate(_trained_for({**alike, fine: 99}), claims.CLAIMS).set_index("id").loc[claim]
    assert "trained differently (epochs 50 against 99, anneal_epochs 50 against 99)" in row.diagnosis
    assert "trained differently" not in fair.diagnosis
    assert row.ours.replace(NOT_COUNTED, "") == fair.ours  # the numbers are still shown ...
    assert NOT_COUNTED not in fair.ours and (NOT_COUNTED in row.ours) == marked  # ... and marked
    assert row.verdict in verdicts and fair.verdict != UNTESTABLE


def test_a_missing_table_makes_its_claims_untestable_with_a_reason(tmp_path):
    source = _copy(tmp_path, lambda folder: (folder / "A-fig9-three-exits.csv").unlink())
    row = claims.evaluate(source, claims.CLAIMS).set_index("id").loc["A-fig9-three-exits"]
    assert row.verdict == UNTESTABLE and "A-fig9-three-exits was not made" in row.diagnosis


@pytest.mark.parametrize(
    ("why", "expected"), [("the codec's network fits less well", "fits less well"), ("", "trained")]
)
def test_a_failing_fig10_test_s_own_reason_replaces_the_backbone_s_training(tmp_path, why, expected):
    def edit(folder):
        path = folder / "A-fig10-bandwidth.csv"
        df = pd.read_csv(path)
        codec = df.claim.str.startswith("compression costs")
        df.loc[codec, "holds"], df.loc[codec, "why"] = False, why
        df.to_csv(path, index=False)

    row = claims.evaluate(_copy(tmp_path, edit), claims.CLAIMS).set_index("id").loc["A-fig10-codec"]
    assert row.verdict == NOT_SUPPORTED and expected in row.diagnosis
    assert ("trained" in row.diagnosis) == (not why)


PAPERS = pipeline.ROOT.parent / "shared" / "papers"
NUMBER = re.compile(r"(?<![\w.§])\d+(?:\.\d+)?\s?%|(?<![\w.§])\d+\.\d+(?![\w.])")


# Method constants typed in a notebook's method prose, not results of our run. Notebook 10 explains its exact FLOPs
# counts by variants the library does not build (a max-pooling exit, option-A shortcuts, one more ReLU): ptflops
# counts of fixed architectures. Notebook 33 states the plateau rule of the CS-Predictor it trains.
_PLATEAU = inspect.signature(predictor.train_to_plateau).parameters["threshold"].default
METHOD = {
    "10_A_architecture_tables": {"16.76", "32.38", "9.69", "0.3%"},
    "33_B_beyond_einet": {f"{_PLATEAU:.1%}"},
}


def _prose(path) -> list[str]:
    """The prose a reader meets after a notebook's parameters: every markdown cell after its first code cell."""
    cells = nbformat.read(path, as_version=4).cells
    first = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    return [c.source for c in cells[first:] if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", sorted((pipeline.ROOT / "notebooks").glob("[1-9]*.ipynb")), ids=lambda p: p.stem)
def test_prose_types_no_result_number(path):
    """Our numbers reach a reader through the claims table and the figures, computed from the results; the prose
    explains mechanisms, and quotes only the paper's own numbers (those of the registry's claims and the papers)
    and the notebook's method constants."""
    texts = [f"{claim.text} {claim.paper_value}" for claim in claims.CLAIMS]
    texts += [p.read_text() for p in PAPERS.glob("paper-*.md")]  # hyper-parameters, thresholds as printed
    allowed = {n.replace(" ", "") for text in texts for n in NUMBER.findall(text)}
    allowed |= {n.rstrip("%") for n in allowed} | METHOD.get(path.stem, set())
    typed = [n for text in _prose(path) for n in NUMBER.findall(text) if n.replace(" ", "") not in allowed]
    assert not typed, f"{path.name}: prose types numbers {typed[:8]}; let the claims table carry them"


def _real_mode(more: tuple[float, float], gaps: tuple[float, float, float], se: float):
    """An edit writing notebook 29's table: the classic network, then every branch and EINet with ``more`` results
    than it (pp, se 3), each policy's real minus simulated accuracy ``gaps`` (pp) with standard error ``se``."""

    def edit(folder):
        pd.DataFrame({
            "policy": ["classic (final exit only)", "every branch", "EINet (CS-Predictor + hybrid search)"],
            "result returned (%)": [15.0, 15.0 + more[0], 15.0 + more[1]], "more results (pp)": [0.0, *more],
            "more results se (pp)": [0.0, 3.0, 3.0], "real minus simulated (pp)": list(gaps),
            "real minus simulated se (pp)": [se] * 3,
        }).to_csv(folder / "B-fig1-real-mode.csv", index=False)  # fmt: skip

    return edit


@pytest.mark.parametrize(("more", "verdict"), [((70, 70), SUPPORTED), ((70, 2), PARTLY), ((0, 0), NOT_SUPPORTED)])
def test_fig1_counts_the_multi_exit_runs_with_more_results_than_the_classic_network(tmp_path, more, verdict):
    assert _verdict(_copy(tmp_path, _real_mode(more, (0, 0, 0), 1.0)), "B-fig1-no-result") == verdict


@pytest.mark.parametrize(
    ("gaps", "verdict", "below"),
    [((-1.5, 1.9, -0.2), SUPPORTED, False), ((-5, -1, -1), PARTLY, True), ((-5, 5, -5), NOT_SUPPORTED, False)],
)
def test_the_simulator_matches_real_mode_within_two_standard_errors(tmp_path, gaps, verdict, below):
    df = claims.evaluate(_copy(tmp_path, _real_mode((70, 70), gaps, 1.0)), claims.CLAIMS).set_index("id")
    assert df.loc["ours-simulator-matches-real-mode", "verdict"] == verdict
    assert ("below the simulation for every policy" in df.loc["ours-simulator-matches-real-mode", "diagnosis"]) == below
