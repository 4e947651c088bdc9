"""Every registered model, as data. Sources name the seed document (see ../shared/seeds/README.md).

Names are part of the interface: they are the ones the lectures and papers use.
"""

from __future__ import annotations

from archcalc.models.registry import ModelEntry, Registry

CIFAR = (3, 32, 32)
IMAGENET = (3, 224, 224)


def _entry(name, family, builder, default_input, description, source, **kwargs) -> ModelEntry:
    return ModelEntry(name, family, f"archcalc.models.{builder}", default_input, description, source, kwargs)


_LAB = "000 (Dong-A Univ. lab: VGG-16 simplified to 6 convs for CIFAR-10)"
_LAB_VGG = [
    ("vgg_base", "6-conv VGG for CIFAR-10, AvgPool 2x2, fc 4096-512-256-10 (class Model)", {}),
    ("vgg_skip", "vgg_base + skip connections through conv_skip1/2/3 (class VGG_SKIP)", {"skip": True}),
    ("vgg_dense", "vgg_base + dense concatenations: conv2_1 in 35, conv3_1 in 99", {"dense": True}),
    ("vgg_ca", "vgg_base + channel attention after conv2_2 (class VGG_CA)", {"attention": True}),
    ("vgg_skip_dense", "combination experiment: skip + dense, max pooling",
     {"skip": True, "dense": True, "pool": "max"}),
    ("vgg_skip_ca", "combination experiment: skip + attention, max pooling",
     {"skip": True, "attention": True, "pool": "max"}),
    ("vgg_dense_ca", "combination experiment: dense + attention, max pooling",
     {"dense": True, "attention": True, "pool": "max"}),
    ("vgg_skip_dense_ca", "combination experiment: skip + dense + attention, max pooling",
     {"skip": True, "dense": True, "attention": True, "pool": "max"}),
]

_VGG_SOURCE = "001 (VGG configurations A-E); Simonyan & Zisserman 2015, Table 1"
_VGG_COLUMNS = [("vgg11", "A", 11), ("vgg11_lrn", "A-LRN", 11), ("vgg13", "B", 13), ("vgg16_c", "C", 16),
                ("vgg16", "D", 16), ("vgg19", "E", 19)]

_RESNET_SOURCE = "002 (ResNet Table 1); He et al. 2016, Table 1"
_RESNET_DEPTHS = (18, 34, 50, 101, 152)
_SENET_SOURCE = "002 (SENet table); Hu et al. 2018, Table 2"
_DENSENET_SOURCE = "002 (DenseNet table); Huang et al. 2017, Table 1"

ENTRIES: list[ModelEntry] = [
    _entry("lenet5", "lenet", "lenet:LeNet5", (1, 32, 32),
           "LeNet-5 (LeCun et al., 1998): C1-S2-C3 (partial connection table)-S4-C5-F6-RBF output",
           "002 (LeNet-5 trainable-parameter arithmetic); LeCun et al. 1998, Fig. 2 and Table I"),
    _entry("cnnet", "cnnet", "cnnet:CNNet", CIFAR,
           "CIFAR-10 CNN: conv 3-32 3x3, max-pool, conv 32-64 4x4, max-pool, dropout, fc 2304-10",
           "003 (CNN modules lecture, class CNNet)"),
    *[_entry(name, "lab-vgg", "lab_vgg:build", CIFAR, text, _LAB, **kw) for name, text, kw in _LAB_VGG],
    _entry("alexnet", "alexnet", "alexnet:AlexNet", (3, 227, 227),
           "AlexNet as the lecture's shape table: 227 -> 55 -> 27 -> 13 -> 6, LRN, FC 4096-4096-1000",
           "001 (AlexNet per-layer shapes, CS231n); Krizhevsky et al. 2012"),
    _entry("alexnet_tv", "alexnet", "alexnet:AlexNetTV", IMAGENET,
           "torchvision's single-tower AlexNet: 64-192-384-256-256, no LRN", "001; torchvision.models.alexnet"),
    *[_entry(f"{name}{'_bn' if bn else ''}", "vgg", "vgg:VGG", IMAGENET,
             f"VGG configuration {cfg} ({depth} weight layers){' with batch norm' if bn else ''}, ImageNet classifier",
             _VGG_SOURCE, cfg=cfg, batch_norm=bn)
      for name, cfg, depth in _VGG_COLUMNS for bn in (False, True)],
    _entry("vgg16_cifar", "vgg", "vgg:cifar", CIFAR,
           "seed 001's CIFAR-10 VGG-16: 13 convs, 3 max-pools, classifier 512*4*4 -> 4096 -> 4096 -> 10",
           "001 (CIFAR-10 VGG, cfg [32,32,'M',64,64,128,128,128,'M',256,256,256,512,512,512,'M'])"),
    _entry("vgg_custom_cifar", "vgg", "vgg:cifar", CIFAR,
           "seed 001's 'custom' cfg with batch norm; classifier from its 256*4*4 = 4096 features "
           "(the seed's 512*4*4 cannot run: --arg classifier_in=8192 shows the failure)",
           "001 ('custom' cfg [64,64,64,'M',128,128,128,'M',256,256,256,'M'])",
           cfg="custom", batch_norm=True),
    _entry("vgg19_cifar", "vgg", "vgg:cifar", CIFAR,
           "the assignment's VGG-19 for CIFAR-10: 16 convs + 3 FC, 3 max-pools (cfg assumed: E's widths)",
           "001 (assignment: VGG 19 CIFAR10)", cfg="cifar19"),
    *[_entry(f"resnet{d}", "resnet", "resnet:ResNet", IMAGENET,
             f"ResNet-{d} as the paper built it (bottleneck stride on the first 1x1)", _RESNET_SOURCE, depth=d)
      for d in _RESNET_DEPTHS],
    *[_entry(f"resnet{d}_tv", "resnet", "resnet:ResNet", IMAGENET,
             f"torchvision's ResNet-{d} (v1.5: downsampling stride on the 3x3 conv)",
             "001 (torchvision-style Bottleneck); torchvision.models", depth=d, stride_on="3x3")
      for d in (50, 101, 152)],
    _entry("resnet50_cifar", "resnet", "resnet:cifar", CIFAR,
           "seed 001's CIFAR-10 ResNet-50: 3x3 stem to 16, no max-pool, planes 32/64/128/256, strides 1/1/2/2",
           "001 (CIFAR-10 ResNet-50: layer outputs 128x32x32, 256x32x32, 512x16x16, 1024x8x8)", depth=50),
    _entry("resnet34_cifar", "resnet", "resnet:cifar", CIFAR,
           "the assignment's ResNet-34 for CIFAR-10: BasicBlock x [3, 4, 6, 3] on seed 001's CIFAR stem",
           "001 (assignment: ResNet 34 CIFAR10)", depth=34),
    *[_entry(f"se_resnet{d}", "senet", "resnet:ResNet", IMAGENET,
             f"ResNet-{d} with a squeeze-and-excitation block (r = 16) in every residual block",
             _SENET_SOURCE, depth=d, attention="se", reduction=16)
      for d in _RESNET_DEPTHS],
    *[_entry(f"{se}resnext{d}_32x4d", "resnext", "resnet:ResNet", IMAGENET,
             f"ResNeXt-{d} (32x4d: cardinality 32, width 4, stride on the 3x3)"
             + (" with SE blocks (r = 16)" if se else ""),
             _SENET_SOURCE + "; Xie et al. 2017", depth=d, groups=32, width_per_group=4, stride_on="3x3",
             **({"attention": "se", "reduction": 16} if se else {}))
      for se in ("", "se_") for d in (50, 101)],
    _entry("se_vgg16_bn", "senet", "vgg:VGG", IMAGENET,
           "VGG-16 (D) with batch norm and an SE block (r = 16) after every conv's ReLU",
           _SENET_SOURCE, cfg="D", batch_norm=True, attention="se", reduction=16),
    *[_entry(f"densenet{d}", "densenet", "densenet:DenseNet", IMAGENET,
             f"DenseNet-{d} (DenseNet-BC, k = 32, blocks {blocks})", _DENSENET_SOURCE, depth=d)
      for d, blocks in ((121, "6-12-24-16"), (169, "6-12-32-32"), (201, "6-12-48-32"), (264, "6-12-64-48"))],
    _entry("googlenet", "googlenet", "googlenet:GoogLeNet", IMAGENET,
           "GoogLeNet / Inception v1 with real 5x5 branches; aux classifiers with --arg aux_logits=true",
           "001 (GoogLeNet/Inception); Szegedy et al. 2015, Table 1"),
    *[_entry(f"{se}bn_inception", "inception", "inception:BNInception", IMAGENET,
             "BN-Inception (Inception with batch norm, Ioffe & Szegedy 2015)" + (" with SE blocks (r = 16)" if se else ""),
             _SENET_SOURCE + "; Ioffe & Szegedy 2015, Figure 5", **({"attention": "se"} if se else {}))
      for se in ("", "se_")],
    *[_entry(f"{se}inception_resnet_v2", "inception", "inception_resnet:InceptionResNetV2", (3, 299, 299),
             "Inception-ResNet-v2 as the TF-slim network (10/20/10 blocks; --arg variant=paper for the paper's figures)"
             + (" with SE blocks (r = 16)" if se else ""),
             _SENET_SOURCE + "; Szegedy et al. 2017", **({"attention": "se"} if se else {}))
      for se in ("", "se_")],
    *[_entry(f"vit_{c.lower()}_{p}", "vit", "vit:VisionTransformer", (3, size, size),
             f"ViT-{c}/{p} ({layers} layers, width {width}, {heads} heads) at {size}x{size}, as torchvision lays it out",
             "Dosovitskiy et al. 2021, Table 1; torchvision's vit_* metadata", config=c, patch_size=p, image_size=size)
      for c, p, size, layers, width, heads in (("B", 16, 224, 12, 768, 12), ("B", 32, 224, 12, 768, 12),
                                               ("L", 16, 224, 24, 1024, 16), ("L", 32, 224, 24, 1024, 16),
                                               ("H", 14, 224, 32, 1280, 16))],
    _entry("vdsr", "super-resolution", "super_resolution:VDSR", (1, 256, 256),
           "VDSR: 20 3x3 conv layers, 64 channels, global residual (luminance, upscaled input)",
           "002 (VDSR); Kim et al. 2016"),
    _entry("srdensenet", "super-resolution", "super_resolution:SRDenseNet", (1, 64, 64),
           "SR-DenseNet: 8 dense blocks (8 layers, k = 16), dense skips to 1152 maps, x4 deconvolution",
           "002 (SR-DenseNet); Tong et al. 2017"),
]

REGISTRY = Registry(ENTRIES)
