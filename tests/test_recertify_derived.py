"""Recertifying derived results: a change that computes the same keeps them, any other leaves them to recompute."""

import json
import subprocess

from earlyexit.engine import artifacts, recertify, recertify_derived


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=artifacts.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def _edit(lib, path, old, new):
    target = lib / "earlyexit" / path
    text = target.read_text()
    assert old in text, f"{old!r} not in {path}"
    target.write_text(text.replace(old, new))


def test_a_same_result_refactor_is_certified_by_replay_and_a_real_change_is_not(tmp_path):
    lib = recertify.checkout(_head(), tmp_path / "code")
    # the same steps, counted another way: the CS-Predictor replay must come out bit for bit the same
    _edit(lib, "engine/sgd.py", "steps = math.ceil(len(order) / batch_size)", "steps = -(-len(order) // batch_size)")
    # the robust planner's paired standard error changes (ddof 0): its replay differs, so Fig. 13 recomputes
    _edit(lib, "paper_b/elastic.py", "d.std(ddof=1)", "d.std(ddof=0)")
    certified = recertify_derived.certify(_head(), lib, kinds=("cs", "fig13"))
    assert [found["kind"] for found in certified.values()] == ["cs"]
    (found,) = certified.values()
    assert "epoch changed" in found["how"] and "cs-predictor replay is bit for bit identical" in found["how"]


def test_apply_rewrites_only_the_records_of_certified_fingerprints(tmp_path):
    derived = tmp_path / "cpu" / "net" / "derived"
    derived.mkdir(parents=True)
    for name, code in (("cs-predictor.npz", "old"), ("cs-other.npz", "other")):
        (derived / f"{name}.json").write_text(json.dumps({"key": {"code_sha256": code, "kwargs": {}}, "sha256": "s"}))
    certified = {"old": {"to": "new", "how": "shown", "kind": "cs"}}
    assert recertify_derived.apply(certified, tmp_path / "cpu", "abc") == [derived / "cs-predictor.npz.json"]
    record = json.loads((derived / "cs-predictor.npz.json").read_text())
    assert record["key"] == {"code_sha256": "new", "kwargs": {}} and record["sha256"] == "s"
    assert record["recertified"][0]["from_code"] == "old" and record["recertified"][0]["how"] == "shown"
    assert json.loads((derived / "cs-other.npz.json").read_text())["key"]["code_sha256"] == "other"
