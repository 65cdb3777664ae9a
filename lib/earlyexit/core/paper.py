"""Numbers printed in the two papers, transcribed once so every table can set ours beside them.

Paper A: Dong, Mao, Zhang, *Resource-Constrained Edge AI with Early Exit Prediction*.
Paper B: Huang, Gao, Dong, *Elastic DNN Inference with Unpredictable Exit*.
FLOPs are in MFLOPs (ptflops multiply-accumulates), accuracies in %.
"""

#: Paper A Table I: backbone accuracy (%) and MFLOPs, by (dataset, backbone).
A_TABLE1 = {
    ("cifar10", "alexnet"): (85.95, 62.88),
    ("cifar10", "vgg16bn"): (94.04, 333.08),
    ("cifar10", "resnet44"): (93.91, 98.52),
    ("cifar100", "alexnet"): (60.32, 63.25),
    ("cifar100", "vgg16bn"): (72.70, 333.45),
    ("cifar100", "resnet44"): (72.21, 98.52),
}

#: Paper A §III: VGG16-BN (Fig. 2) on CIFAR-10 with both confidence thresholds at 0.99: share of the
#: test samples answered by each exit (%), and average MFLOPs per sample in all and on the device,
#: for the early-exit network and for an oracle that computes only the exit that answers.
A_SEC3 = {
    "exit_share": (66.62, 19.81, 13.57),
    "total_mflops": 79.64,
    "device_mflops": 42.44,
    "oracle_total_mflops": 72.13,
    "oracle_device_mflops": 34.93,
}

#: Paper A Table II: EP architectures on CIFAR-100, (accuracy %, on-device MFLOPs, EP MFLOPs) by
#: (backbone, architecture).
A_TABLE2 = {
    ("alexnet", "ours"): (60.52, 13.27, 0.40),
    ("alexnet", "w/o Cat. & SE"): (60.52, 13.53, 0.29),
    ("alexnet", "FCs only"): (60.50, 14.43, 0.39),
    ("alexnet", "LeNet"): (60.44, 13.90, 0.67),
    ("vgg16bn", "ours"): (74.39, 67.30, 0.40),
    ("vgg16bn", "w/o Cat. & SE"): (74.49, 67.65, 0.29),
    ("vgg16bn", "FCs only"): (74.51, 70.38, 0.39),
    ("vgg16bn", "LeNet"): (74.46, 68.46, 0.67),
    ("resnet44", "ours"): (72.60, 41.67, 0.40),
    ("resnet44", "w/o Cat. & SE"): (72.57, 41.71, 0.29),
    ("resnet44", "FCs only"): (72.62, 42.71, 0.39),
    ("resnet44", "LeNet"): (72.61, 42.21, 0.67),
}

#: Paper A Table III (two early exits) and Table IV (three, ResNet44): output size of each
#: layer / residual block of each early exit, (channels, height, width).
A_TABLE3 = {
    "alexnet": [[(64, 8, 8), (64, 8, 8)], [(64, 4, 4)]],
    "vgg16bn": [[(64, 16, 16), (32, 16, 16), (32, 16, 16)], [(128, 8, 8), (64, 8, 8)]],
    "resnet44": [[(16, 32, 32), (16, 32, 32)], [(32, 16, 16)]],
}
A_TABLE4 = {"resnet44_3exit": [[(16, 32, 32), (16, 32, 32)], [(16, 32, 32)], [(32, 16, 16)]]}

#: Paper A Table V: (O_l1, O_e1, O_l2, O_e2) in MFLOPs, by (dataset, backbone).
A_TABLE5 = {
    ("cifar10", "alexnet"): (0.49, 4.75, 7.11, 1.78),
    ("cifar10", "vgg16bn"): (1.97, 16.70, 56.98, 14.23),
    ("cifar10", "resnet44"): (5.29, 9.66, 32.53, 4.79),
    ("cifar100", "alexnet"): (0.49, 4.84, 7.11, 1.80),
    ("cifar100", "vgg16bn"): (1.97, 17.43, 56.98, 14.60),
    ("cifar100", "resnet44"): (5.29, 10.03, 32.53, 4.97),
}

#: Paper A Table VI: (O_l1, O_e1, O_l2, O_e2, O_l3, O_e3), ResNet44 with three early exits, CIFAR-100.
A_TABLE6 = {("cifar100", "resnet44_3exit"): (5.29, 10.03, 14.4, 5.23, 18.13, 4.97)}

#: Paper A §V-C (Fig. 10, VGG16-BN on CIFAR-100): the feature compression ratio, the accuracy it may cost
#: at most (%), and EE (Static)'s confidence thresholds. The device speed and tau are in ``latency``.
A_SEC5C = {"compression_ratio": 64, "compression_accuracy_drop_pct": 0.5, "static_lam": (0.95, 0.85)}

#: Paper B Table I: execution time (ms) of the search engine, (max, avg, min), Python vs C, for
#: MSDNet with 40 blocks (§VI-A; the paper does not state m, Fig. 12 suggests 4 or 5).
B_TABLE1 = {
    ("expectation", "Python"): (0.0610, 0.0594, 0.0584),
    ("expectation", "C"): (0.0003, 0.0003, 0.0003),
    ("hybrid", "Python"): (4.9145, 4.6599, 4.3861),
    ("hybrid", "C"): (0.1292, 0.1277, 0.1267),
}

#: Paper B Table III: Activation Cache, by model: (exits, time reduced in %, memory in bytes).
#: The memory column equals 4 * (h1 + exits) bytes, which gives the input-layer widths h1 used here.
B_TABLE3 = {
    "B-AlexNet": (3, 3.84, 1036),
    "ResNet-50": (6, 3.52, 2072),
    "FlexVGG-16": (5, 4.00, 2068),
    "MSDNet21": (21, 3.41, 8276),
    "VGG-16": (14, 3.77, 8248),
    "MSDNet40": (40, 3.08, 16544),
}

#: Paper B §IV-B1 / Fig. 4 (MSDNet-40, 10,000 samples): per-block execution time varies by less than
#: 0.07 ms for 90 % of the samples and less than 0.1 ms for 95 %.
B_FIG4_SPREAD_MS = {90: 0.07, 95: 0.1}

#: Paper B Table II: accuracy (%) of the optimal static plan ("Statis") and of EINet ("Ours"), by
#: (dataset, model); uniform preemption (§VI-A).
B_TABLE2 = {
    ("cifar10", "B-AlexNet"): (78.43, 78.71),
    ("cifar10", "ResNet-50"): (85.62, 86.65),
    ("cifar10", "FlexVGG-16"): (88.10, 88.23),
    ("cifar10", "MSDNet21"): (80.87, 81.11),
    ("cifar10", "VGG-16"): (88.98, 89.12),
    ("cifar10", "MSDNet40"): (86.38, 86.60),
    ("cifar100", "B-AlexNet"): (46.40, 46.41),
    ("cifar100", "ResNet-50"): (62.73, 63.29),
    ("cifar100", "FlexVGG-16"): (65.88, 66.03),
    ("cifar100", "MSDNet21"): (62.25, 63.92),
    ("cifar100", "VGG-16"): (65.63, 66.08),
    ("cifar100", "MSDNet40"): (66.14, 67.93),
}
#: Our model names -> Paper B's (Tables II, III).
B_MODEL_NAMES = {
    "b_alexnet": "B-AlexNet",
    "resnet50_finegrained": "ResNet-50",
    "flexvgg16": "FlexVGG-16",
    "msdnet21": "MSDNet21",
    "vgg16_finegrained": "VGG-16",
    "msdnet40": "MSDNet40",
}
#: Paper B's headline gains in accuracy points (abstract, §VI-B): EINet over the static plans of
#: Fig. 8 and over the dynamic plans of Fig. 9 (confidence thresholds, random search).
B_GAIN_STATIC = (0.13, 16.5)
B_GAIN_DYNAMIC = (0.79, 4.1)
#: Paper B §VI-B1: "increasing the number of branches for the same model backbone can lead to improved
#: overall accuracy": (coarse, fine-grained) variants of one backbone among its models (Tables II, III names).
B_SAME_BACKBONE = (("FlexVGG-16", "VGG-16"),)
#: Paper B §VI-B3 (Fig. 10, ten runs): EINet's gain in accuracy points over the classic single-exit
#: network, the compressed one and the multi-exit network without planner, across its four networks.
B_FIG10_GAIN = {"classic": (40.4, 61.5), "compressed": (38.5, 58.2), "ME-NN": (0.8, 1.5)}
#: Fig. 10's four networks, coarse to fine; "the overall accuracy of the model with 40 blocks in elastic
#: inference is improved by approximately 5%" over the one with 21 (their last exits within 0.5 %).
B_FIG10_MODELS = ("flexvgg16", "vgg16_finegrained", "msdnet21", "msdnet40")
B_FIG10_MSDNET40_OVER_21 = 5.0
