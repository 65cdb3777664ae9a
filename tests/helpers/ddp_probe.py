"""Run by tests/test_distributed.py under ``torchrun``: one epoch of the device-resident loop on a slice of
real CIFAR-10, B-AlexNet with its dropout off (the masks are the one draw that differs between one process and
several), printing the epoch's loss and a checksum of the trained weights from the first process."""

import json
import sys

import torch

from earlyexit import train
from earlyexit.core import data
from earlyexit.engine import resident, training
from earlyexit.nets.models import build_model

train._start_group("paper")
cfg = training.profile_config(
    "paper", "b_alexnet", epochs=1, anneal_epochs=1, train_per_class=24, batch_size=32, precision="fp32"
)
model = build_model("b_alexnet", "cifar10", seed=0)
for layer in model.modules():
    if isinstance(layer, torch.nn.Dropout):
        layer.p = 0.0
history = resident.train(model, data.load("cifar10"), cfg, sys.argv[1], "probe", progress=False, fresh=True)
if resident.rank_and_world()[0] == 0:
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    print(json.dumps({"loss": history[0]["loss"], "processes": history[0]["processes"], "weights": weights.tolist()}))
torch.distributed.destroy_process_group() if torch.distributed.is_initialized() else None
