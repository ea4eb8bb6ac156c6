"""Built-in architectures by name: ``from_spec("lenet5")``, ``cnnkit summary vgg16``."""

from __future__ import annotations

ARCHITECTURES: dict[str, str] = {
    # The lecture's stack for the embedded 8x8 digits (what `make demo` trains).
    "lecture": "INPUT(1x8x8) - CONV(D=32, F=3, P=1) - RELU - POOL(F=2)"
    " - CONV(D=64, F=3, P=1) - RELU - POOL(F=2) - FC(10)",
    # The same stack sized for 28x28 MNIST digits.
    "lecture-mnist": "INPUT(1x28x28) - CONV(D=32, F=3, P=1) - RELU - POOL(F=2)"
    " - CONV(D=64, F=3, P=1) - RELU - POOL(F=2) - FC(10)",
    # What `cnnkit train` trains on 28x28 one-channel images (MNIST) by default: CONV-BN-RELU
    # blocks (3x3 filters without bias, as BN follows), a 5x5 CONV of S=2 as the first, cheap
    # downsampling of the one-channel image, a hidden FC with DROPOUT before the classifier.
    # 10 epochs with its recipe (cnnkit.cli.train; benchmarks/mnist_modern.py): 99.56 % on
    # MNIST's test set in 172 s of training on 2 quiet cores (99.52 to 99.62 % over seeds 0-2
    # on one thread): 468,522 parameters (and BN's 384 running statistics).
    "mnist-bn": "INPUT(1x28x28) - CONV(D=32, F=5, S=2, P=2, bias=false) - BN - RELU"
    " - CONV(D=32, F=3, P=1, bias=false) - BN - RELU - POOL(F=2)"
    " - CONV(D=64, F=3, P=1, bias=false) - BN - RELU - CONV(D=64, F=3, P=1, bias=false) - BN"
    " - RELU - FC(128) - RELU - DROPOUT(0.3) - FC(10)",
    # The lecture's worked example: 5x5x3 input, P=1, one 3x3x3 filter, S=2 -> 3x3 output.
    "worked-example": "INPUT(3x5x5) - CONV(D=1, F=3, S=2, P=1)",
    # The lecture's AlexNet conv1: 227x227x3 -> 55x55x96, 34,944 parameters.
    "alexnet-conv1": "INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0)",
    # LeCun et al. 1998, with ReLU and max pooling as in most modern re-creations: 61,706.
    "lenet5": "INPUT(1x32x32) - CONV(D=6, F=5) - RELU - POOL(max, F=2) - CONV(D=16, F=5) - RELU"
    " - POOL(max, F=2) - FC(120) - RELU - FC(84) - RELU - FC(10)",
    # The same network for 28x28 MNIST digits: P=2 on the first CONV keeps 28x28 as LeNet's
    # 32x32 input did; what benchmarks/mnist_lenet.py trains.
    "lenet5-mnist": "INPUT(1x28x28) - CONV(D=6, F=5, P=2) - RELU - POOL(max, F=2)"
    " - CONV(D=16, F=5) - RELU - POOL(max, F=2) - FC(120) - RELU - FC(84) - RELU - FC(10)",
    # Krizhevsky et al. 2012 on one GPU (the lecture's conv1), without LRN: 62,378,344.
    "alexnet": "INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(F=3, S=2)"
    " - CONV(D=256, F=5, P=2) - RELU - POOL(F=3, S=2) - CONV(D=384, F=3, P=1) - RELU"
    " - CONV(D=384, F=3, P=1) - RELU - CONV(D=256, F=3, P=1) - RELU - POOL(F=3, S=2)"
    " - FC(4096) - RELU - FC(4096) - RELU - FC(1000)",
    # torchvision.models.alexnet: 64 filters in conv1 on 224x224, whose (224 - 11 + 2*2)/4 + 1
    # = 55.25 only PyTorch's floor makes 55: 61,100,840.
    "alexnet-torchvision": "INPUT(3x224x224) - CONV(D=64, F=11, S=4, P=2, round=floor) - RELU"
    " - POOL(F=3, S=2) - CONV(D=192, F=5, P=2) - RELU - POOL(F=3, S=2)"
    " - CONV(D=384, F=3, P=1) - RELU - CONV(D=256, F=3, P=1) - RELU - CONV(D=256, F=3, P=1)"
    " - RELU - POOL(F=3, S=2) - FC(4096) - RELU - FC(4096) - RELU - FC(1000)",
    # Simonyan & Zisserman 2014, configuration D: 138,357,544.
    "vgg16": "INPUT(3x224x224) - [CONV(D=64, F=3, P=1) - RELU] x 2 - POOL(F=2)"
    " - [CONV(D=128, F=3, P=1) - RELU] x 2 - POOL(F=2) - [CONV(D=256, F=3, P=1) - RELU] x 3"
    " - POOL(F=2) - [CONV(D=512, F=3, P=1) - RELU] x 3 - POOL(F=2)"
    " - [CONV(D=512, F=3, P=1) - RELU] x 3 - POOL(F=2) - FC(4096) - RELU - FC(4096) - RELU"
    " - FC(1000)",
    # He et al. 2016, section 4.2: ResNet-20 for CIFAR-10 (n = 3 blocks per stage, 16-32-64
    # filters, 32x32 -> 16x16 -> 8x8), option B shortcuts: a 1x1 CONV of S=2 and BN where a
    # stage halves the size (option A's parameter-free zero padding is not a cnnkit layer);
    # 3x3 CONVs without bias before BN, as the paper's. 0.27 M parameters.
    "resnet20": "INPUT(3x32x32) - CONV(D=16, F=3, P=1, bias=false) - BN - RELU"
    " - [RES[CONV(D=16, F=3, P=1, bias=false) - BN - RELU - CONV(D=16, F=3, P=1, bias=false)"
    " - BN] - RELU] x 3"
    " - RES[CONV(D=32, F=3, S=2, P=1, bias=false) - BN - RELU - CONV(D=32, F=3, P=1, bias=false)"
    " - BN | CONV(D=32, F=1, S=2, bias=false) - BN] - RELU"
    " - [RES[CONV(D=32, F=3, P=1, bias=false) - BN - RELU - CONV(D=32, F=3, P=1, bias=false)"
    " - BN] - RELU] x 2"
    " - RES[CONV(D=64, F=3, S=2, P=1, bias=false) - BN - RELU - CONV(D=64, F=3, P=1, bias=false)"
    " - BN | CONV(D=64, F=1, S=2, bias=false) - BN] - RELU"
    " - [RES[CONV(D=64, F=3, P=1, bias=false) - BN - RELU - CONV(D=64, F=3, P=1, bias=false)"
    " - BN] - RELU] x 2"
    " - GAP - FC(10)",
}
