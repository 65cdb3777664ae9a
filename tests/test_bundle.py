"""The GPU bundle's dry run on the CPU: pack real data into pieces, check and unpack them with run.sh, train
smoke jobs within a one-minute budget, hand back current artifacts in files of bounded size."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from earlyexit import bundle, pipeline
from earlyexit.engine import artifacts, training

SHARED = pipeline.ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    if not (SHARED / "mnist" / "meta.json").is_file():
        pytest.skip(f"no dataset sheets in {SHARED}")
    out = tmp_path_factory.mktemp("bundle")
    files = bundle.pack(out, ["mnist"], SHARED, piece_mb=4, wheels=False)
    return out, files


def _run_sh(out: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"WORK": str(work), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(out / "run.sh"), *args], capture_output=True, text=True, env=env, timeout=600)


def test_pieces_are_bounded_and_listed_with_their_sums(packed):
    out, files = packed
    pieces = [f for f in files if ".part" in f.name]
    assert len(pieces) >= 3 and all(p.stat().st_size <= 4 * bundle.MB for p in pieces)
    assert [line.split()[1] for line in (out / "SHA256SUMS").read_text().splitlines()] == [p.name for p in pieces]


def test_dry_run_trains_within_the_budget_and_hands_back_current_artifacts(packed, tmp_path):
    out, _ = packed
    done = _run_sh(
        out, tmp_path / "work", "--profile", "smoke", "--budget", "1", "--jobs", "2", "--out", str(tmp_path / "back")
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no CUDA device" in done.stdout or "GPU(s)" in done.stdout
    parts = sorted((tmp_path / "back").glob("results.tar.part*"))
    assert 1 <= len(parts) < bundle.RESULT_FILES and all(
        p.stat().st_size <= bundle.RESULT_MB * bundle.MB for p in parts
    )
    root = tmp_path / "returned"
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(root, filter="data")
    outcome = json.loads((root / "smoke" / "outcome.json").read_text())
    assert outcome["jobs"] and all(job["exit"] == 0 for job in outcome["jobs"])
    for job in outcome["jobs"]:
        model, dataset = job["job"].rsplit("-", 1)
        run = artifacts.read(root / "smoke" / job["job"], training.stage_params(model, dataset, "smoke"))
        assert run.manifest["git_commit"] == artifacts.git_commit()


def test_a_damaged_piece_stops_run_sh(packed, tmp_path):
    out, files = packed
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in files:
        (copy / f.name).write_bytes(f.read_bytes())
    piece = next(copy.glob("*.part01"))
    piece.write_bytes(piece.read_bytes()[:-1] + b"x")
    done = _run_sh(copy, tmp_path / "work", "--budget", "1")
    assert done.returncode == 2 and "a piece is damaged or missing" in done.stdout


def test_hand_back_leaves_out_checkpoints_that_do_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "RESULT_MB", 1)
    job = tmp_path / "paper" / "resnet44-cifar100"
    job.mkdir(parents=True)
    kept = [job / "manifest.json", job / "profile.npz"]
    for f in kept:
        f.write_bytes(b"x" * 1000)
    (job / "checkpoint.pt").write_bytes(b"x" * 8 * bundle.MB)
    parts = bundle.hand_back([*kept, job / "checkpoint.pt"], tmp_path, tmp_path / "out")
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        assert tar.getnames() == ["paper/resnet44-cifar100/manifest.json", "paper/resnet44-cifar100/profile.npz"]
