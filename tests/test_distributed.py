"""DistributedDataParallel under torchrun with gloo on the CPU: two processes train what one process does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

PROBE = Path(__file__).parent / "helpers" / "ddp_probe.py"
#: One epoch's loss and weights agree to rounding: DDP sums the two processes' gradients in another order.
TOLERANCE = 1e-4


def _torchrun(processes: int, checkpoint: Path) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([*command, str(PROBE), str(checkpoint)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_gloo_processes_train_as_one_at_the_same_global_batch(tmp_path):
    one, two = _torchrun(1, tmp_path / "one.pt"), _torchrun(2, tmp_path / "two.pt")
    assert (one["processes"], two["processes"]) == (1, 2)
    assert abs(one["loss"] - two["loss"]) <= TOLERANCE * abs(one["loss"])
    a, b = torch.tensor(one["weights"]), torch.tensor(two["weights"])
    torch.testing.assert_close(b, a, rtol=TOLERANCE, atol=TOLERANCE * a.abs().max().item())
