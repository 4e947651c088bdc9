"""Every registered model, as data. Sources name the seed document (see ../shared/seeds/README.md)."""

from __future__ import annotations

from archcalc.models.registry import ModelEntry, Registry

CIFAR = (3, 32, 32)

_LAB_VGG = "archcalc.models.lab_vgg:build"
_LAB_SOURCE = "000 (Dong-A Univ. lab: VGG-16 simplified to 6 convs for CIFAR-10)"


def _lab(name: str, description: str, **kwargs) -> ModelEntry:
    return ModelEntry(name, "lab-vgg", _LAB_VGG, CIFAR, description, _LAB_SOURCE, kwargs)


ENTRIES: list[ModelEntry] = [
    ModelEntry(
        "lenet5", "lenet", "archcalc.models.lenet:LeNet5", (1, 32, 32),
        "LeNet-5 (LeCun et al., 1998): C1-S2-C3 (partial connection table)-S4-C5-F6-RBF output",
        "002 (LeNet-5 trainable-parameter arithmetic); LeCun et al. 1998, Fig. 2 and Table I",
    ),
    ModelEntry(
        "cnnet", "cnnet", "archcalc.models.cnnet:CNNet", CIFAR,
        "CIFAR-10 CNN: conv 3-32 3x3, max-pool, conv 32-64 4x4, max-pool, dropout, fc 2304-10",
        "003 (CNN modules lecture, class CNNet)",
    ),
    _lab("vgg_base", "6-conv VGG for CIFAR-10, AvgPool 2x2, fc 4096-512-256-10 (class Model)"),
    _lab("vgg_skip", "vgg_base + skip connections through conv_skip1/2/3 (class VGG_SKIP)", skip=True),
    _lab("vgg_dense", "vgg_base + dense concatenations: conv2_1 in 35, conv3_1 in 99", dense=True),
    _lab("vgg_ca", "vgg_base + channel attention after conv2_2 (class VGG_CA)", attention=True),
    _lab("vgg_skip_dense", "combination experiment: skip + dense, max pooling", skip=True, dense=True, pool="max"),
    _lab("vgg_skip_ca", "combination experiment: skip + attention, max pooling", skip=True, attention=True, pool="max"),
    _lab("vgg_dense_ca", "combination experiment: dense + attention, max pooling", dense=True, attention=True, pool="max"),
    _lab(
        "vgg_skip_dense_ca", "combination experiment: skip + dense + attention, max pooling",
        skip=True, dense=True, attention=True, pool="max",
    ),
]

REGISTRY = Registry(ENTRIES)
