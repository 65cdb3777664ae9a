"""The ``paper`` profile on a GPU machine without network access, as many cluster compute nodes are.

Here (with network): ``make gpu-bundle`` (``python -m earlyexit.bundle pack build/gpu-bundle``) writes

* ``earlyexit-gpu.tar.partNN``: one tar, cut into pieces of at most 60 MB, of the code (``code/``: the
  library, ``pipeline.toml``, the git commit), the datasets' lossless WebP sheets with their unpacker
  (``data/``) and wheels of the packages such a machine may lack (``wheels/``: ptflops, torch-pruning;
  torch is assumed present);
* ``SHA256SUMS`` of the pieces and ``run.sh``.

With ``--resume artifacts/paper`` the artifacts and checkpoints an earlier run handed back travel too.

There: ``bash run.sh --budget 9 --jobs 4`` checks the pieces' sums, unpacks them, installs the wheels of
missing packages into the work folder, rebuilds the datasets (checked against their recorded sha256),
checks CUDA and prints the GPU, then trains the ``paper`` profile's jobs of the bundled datasets (in
``pipeline.toml``'s order, or ``--models``), ``--jobs`` at once spread over the visible GPUs
(:mod:`earlyexit.engine.parallel`), each a ``python -m earlyexit.train`` process with its own
checkpoint, until the budget is spent (at an epoch boundary). It ends by packing the artifacts --
and the checkpoints of unfinished jobs, to resume from; those of networks over 8 MB only with
``--checkpoints all`` -- with ``outcome.json`` (each job's exit status) into at most 7 files of at most
16 MB (``results.tar.partNN`` in ``--out``; an eighth is left for the run's log).
Running it again with those artifacts and checkpoints in the work folder continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from . import pipeline
from .engine import artifacts, budget, parallel, resident, weights

ROOT = Path(__file__).resolve().parents[2]
MB = 10**6
PIECE_MB = 60  # the largest piece of a bundle
RESULT_FILES, RESULT_MB = 8, 16  # what a run hands back: at most this many files of this size, its log included
WHEELS = ("ptflops==0.6.9", "torch-pruning==1.6.1")  # not in a CUDA image; pure Python
TAR = "earlyexit-gpu.tar"
RESULTS = "results.tar"
#: The bundle's entry point: check, unpack, install missing wheels, then ``python -m earlyexit.bundle run``.
RUN_SH = r"""#!/usr/bin/env bash
# earlyexit GPU bundle: bash run.sh --budget MINUTES [--jobs N] [--models M ...] [--out DIR] ...
# (the options of `python -m earlyexit.bundle run`). WORK (default: ./work) is where it unpacks and trains;
# PYTHON (default: python3) must have torch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${WORK:-$here/work}"
py="${PYTHON:-python3}"
(cd "$here" && sha256sum --check --quiet SHA256SUMS) || { echo "run.sh: a piece is damaged or missing"; exit 2; }
mkdir -p "$work"
cat "$here"/earlyexit-gpu.tar.part* | tar -x -C "$work"
export PYTHONPATH="$work/code/lib:$work/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
missing=$("$py" -c 'import importlib.util as u; print(*[m for m in ("ptflops", "torch_pruning") if not u.find_spec(m)])')
if [ -n "$missing" ] && compgen -G "$work/wheels/*.whl" >/dev/null; then
  echo "run.sh: installing $missing from the bundle's wheels"
  "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$work/site" "$work"/wheels/*.whl
fi
cd "$work/code"
exec "$py" -m earlyexit.bundle run --work "$work" "$@"
"""


# ------------------------------------------------------------------------------------------ packing here
def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(payload), 0
    tar.addfile(info, io.BytesIO(payload))


def _wheels(folder: Path) -> list[Path]:
    """Pure-Python wheels of :data:`WHEELS` in ``folder``, built by pip (ptflops 0.6.9 is published as source
    only; a package registry must be reachable)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), *WHEELS], check=True)
    return sorted(folder.glob("*.whl"))


def _split(stream: Path, out: Path, piece_bytes: int, name: str) -> list[Path]:
    """Cut ``stream`` into ``out/<name>.partNN`` of at most ``piece_bytes``; returns the pieces."""
    pieces = []
    with open(stream, "rb") as f:
        while chunk := f.read(piece_bytes):
            pieces.append(out / f"{name}.part{len(pieces):02d}")
            pieces[-1].write_bytes(chunk)
    return pieces


def pack(
    out: Path,
    datasets: list[str],
    shared_data: Path,
    piece_mb: int = PIECE_MB,
    wheels: bool = True,
    resume: Path | None = None,
) -> list[Path]:
    """Write the bundle of ``datasets`` into ``out`` (see the module's docstring); returns its files. The files
    of a profile's artifact folders under ``resume`` (e.g. ``artifacts/paper``: artifacts and checkpoints handed
    back by an earlier run) go in too, so that the run skips what is current and resumes what is not."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{TAR}.part*"):
        old.unlink()
    stream = out / f".{TAR}.tmp"
    with tarfile.open(stream, "w") as tar:
        for path in sorted((ROOT / "lib" / "earlyexit").rglob("*.py")):
            tar.add(path, f"code/{path.relative_to(ROOT)}")
        tar.add(ROOT / "pipeline.toml", "code/pipeline.toml")
        _add_bytes(tar, "code/COMMIT", artifacts.git_commit().encode())
        tar.add(shared_data / "unpack.py", "data/unpack.py")
        for name in datasets:
            if not (shared_data / name / "meta.json").is_file():
                raise SystemExit(f"{shared_data / name}: no dataset sheets there; pass --shared-data DIR")
            for path in sorted((shared_data / name).iterdir()):
                tar.add(path, f"data/{name}/{path.name}")
        for wheel in _wheels(ROOT / "build" / "wheels") if wheels else []:
            tar.add(wheel, f"wheels/{wheel.name}")
        for path in sorted(resume.rglob("*")) if resume is not None else []:
            if path.is_file() and "derived" not in path.parts:
                tar.add(path, f"artifacts/{resume.name}/{path.relative_to(resume)}")
    pieces = _split(stream, out, piece_mb * MB, TAR)
    stream.unlink()
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in pieces)
    (out / "SHA256SUMS").write_text(sums)
    (out / "run.sh").write_text(RUN_SH)
    return [*pieces, out / "SHA256SUMS", out / "run.sh"]


# ------------------------------------------------------------------------------------------ running there
def describe_device() -> str:
    """One line on the accelerator this run trains on."""
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA device: training on the CPU (torch {torch.__version__})"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    return f"{len(names)} GPU(s): {', '.join(names)} ({memory:.0f} GiB each), torch {torch.__version__}"


def bundled_jobs(profile: str, datasets: list[str], models: list[str] | None) -> list[tuple[str, str]]:
    """The profile's training jobs on the bundled ``datasets``: ``pipeline.toml``'s order, or ``models``' order."""
    matrix = [job for job in pipeline.matrix(profile) if job[1] in datasets]
    if models is None:
        return matrix
    unknown = set(models) - {m for m, _ in matrix}
    if unknown:
        raise SystemExit(f"--models {sorted(unknown)}: not in the {profile} matrix for {', '.join(datasets)}")
    return [job for m in models for job in matrix if job[0] == m]


def _train(job: tuple[str, str], env: dict[str, str], args: argparse.Namespace) -> dict:
    """One training process; returns what happened to the job."""
    model, dataset = job
    log = Path(args.work) / "logs" / f"{model}-{dataset}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "earlyexit.train", "--profile", args.profile, "--model", model]
    command += ["--dataset", dataset, "--artifacts", str(args.artifacts), "--quiet"]
    command += [f"--compile={args.compile_mode}"] if model in args.compile or "all" in args.compile else []
    command += [f"--set={item}" for item in args.set]
    start = time.time()
    with open(log, "w") as out:
        code = subprocess.run(command, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT).returncode
        if code not in (0, pipeline.EXIT_BUDGET) and any(c.startswith("--compile") for c in command):
            print(f"{model}-{dataset}: failed compiled (see {log}); again without torch.compile", flush=True)
            plain = [c for c in command if not c.startswith("--compile")]
            code = subprocess.run(plain, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT).returncode
    tail = log.read_text().strip().splitlines()[-1:] or [""]
    print(
        f"[{time.time() - start:5.0f} s] {model}-{dataset} (GPU {env.get('CUDA_VISIBLE_DEVICES', '-')}): "
        f"{tail[0][:200]}",
        flush=True,
    )
    return {"job": f"{model}-{dataset}", "exit": code}


def _result_files(artifact_root: Path, profile: str, checkpoints: str) -> list[Path]:
    """What a run hands back: every artifact's files, exported weights of small networks, and the checkpoints
    of unfinished jobs (of networks over :data:`weights.MAX_BYTES` too only if ``checkpoints == "all"``)."""
    chosen = []
    for directory in sorted(p for p in (artifact_root / profile).glob("*") if p.is_dir()):
        done = (directory / artifacts.MANIFEST).is_file()
        if done and (directory / "checkpoint.pt").is_file():
            try:
                weights.export(directory)
            except weights.WeightsError as err:
                print(f"{directory.name}: weights not exported ({err})", flush=True)
        chosen += [p for p in sorted(directory.iterdir()) if p.is_file() and p.name != "checkpoint.pt"]
        ckpt = directory / "checkpoint.pt"
        if not done and ckpt.is_file() and (checkpoints == "all" or ckpt.stat().st_size <= 2 * weights.MAX_BYTES):
            chosen.append(ckpt)
    return chosen


def hand_back(paths: list[Path], root: Path, out: Path) -> list[Path]:
    """Pack ``paths`` (relative to ``root``) into at most :data:`RESULT_FILES` files of :data:`RESULT_MB` MB in
    ``out``, leaving out the largest checkpoints if they would not fit; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    limit = 0.99 * (RESULT_FILES - 1) * RESULT_MB * MB  # one file is left for the log; 1 % for tar headers
    keep = sorted(paths, key=lambda p: (p.name == "checkpoint.pt", p.stat().st_size))
    while sum(p.stat().st_size for p in keep) > limit and keep[-1].name == "checkpoint.pt":
        print(f"left out (too large to hand back): {keep.pop().relative_to(root)}", flush=True)
    stream = out / f".{RESULTS}.tmp"
    with tarfile.open(stream, "w") as tar:
        for path in sorted(keep):
            tar.add(path, str(path.relative_to(root)))
    pieces = _split(stream, out, RESULT_MB * MB, RESULTS)
    stream.unlink()
    if len(pieces) > RESULT_FILES - 1:
        raise SystemExit(f"the results need {len(pieces)} files of {RESULT_MB} MB; at most {RESULT_FILES} fit")
    return pieces


def run(args: argparse.Namespace) -> int:
    """Train the bundle's jobs within the budget and hand back the results (see the module's docstring)."""
    work = Path(args.work)
    datasets = [d for d in ("cifar10", "cifar100", "mnist") if (work / "data" / d / "meta.json").is_file()]
    subprocess.run([sys.executable, str(work / "data" / "unpack.py"), str(work / "npz"), *datasets], check=True)
    os.environ["EARLYEXIT_DATA"] = str(work / "npz")
    if (commit := work / "code" / "COMMIT").is_file():
        os.environ[artifacts.COMMIT_ENV] = commit.read_text().strip()
    print(describe_device(), flush=True)
    deadline = budget.set_minutes(args.budget)
    jobs = bundled_jobs(args.profile, datasets, args.models)
    print(
        f"{len(jobs)} jobs, {args.jobs} at a time, budget {args.budget} min: {', '.join(f'{m}-{d}' for m, d in jobs)}",
        flush=True,
    )
    outcome = parallel.run_pool(jobs, args.jobs, lambda job, env: _train(job, env, args))
    root = Path(args.artifacts)
    (root / args.profile / "outcome.json").write_text(json.dumps({"deadline": deadline, "jobs": outcome}, indent=1))
    chosen = [*_result_files(root, args.profile, args.checkpoints), root / args.profile / "outcome.json"]
    files = hand_back(chosen, root, Path(args.out))
    print(f"handed back {len(files)} file(s) in {args.out}", flush=True)
    return 0 if all(o["exit"] in (0, pipeline.EXIT_BUDGET) for o in outcome) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.bundle", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write a bundle (here, with network)")
    p.add_argument("out", type=Path)
    p.add_argument("--datasets", nargs="+", default=["cifar100", "cifar10"])
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--piece-mb", type=int, default=PIECE_MB)
    p.add_argument("--no-wheels", action="store_true", help="leave the wheels out (the target has the packages)")
    p.add_argument(
        "--resume", type=Path, help="a profile's artifact folder to carry, e.g. artifacts/paper (checkpoints included)"
    )
    r = sub.add_parser("run", help="train from an unpacked bundle (there; run.sh calls this)")
    r.add_argument("--work", required=True, help="the folder run.sh unpacked the bundle into")
    r.add_argument("--budget", type=float, required=True, help="minutes for training, all jobs together")
    r.add_argument("--jobs", type=int, default=4, help="training processes at once (several per GPU)")
    r.add_argument("--profile", default="paper")
    r.add_argument("--models", nargs="+", help="train only these models, in this order")
    r.add_argument("--compile", nargs="*", default=[], help="models to torch.compile, or 'all'")
    r.add_argument("--compile-mode", default="default", choices=resident.COMPILE_MODES)
    r.add_argument("--set", nargs="*", default=[], help="recipe changes for every job, e.g. epochs=2")
    r.add_argument("--checkpoints", choices=("small", "all"), default="small")
    r.add_argument("--artifacts", help="artifact root (default WORK/artifacts)")
    r.add_argument("--out", help="where the results go (default WORK/out)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        for path in pack(args.out, args.datasets, args.shared_data, args.piece_mb, not args.no_wheels, args.resume):
            print(f"{path}  {path.stat().st_size / MB:.1f} MB")
        return 0
    args.artifacts = args.artifacts or str(Path(args.work) / "artifacts")
    args.out = args.out or str(Path(args.work) / "out")
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
