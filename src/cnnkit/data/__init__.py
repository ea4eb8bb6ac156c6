"""Data sets as NCHW float32 images and int64 labels; nothing is downloaded at run time.

``load_dataset(source)`` reads one of four sources and returns a :class:`Dataset` with training,
validation and test splits, normalised with per-channel statistics of the training split:

- ``optdigits``: the UCI optdigits set, shipped inside the package (E. Alpaydin, C. Kaynak, 1998,
  CC BY 4.0, https://doi.org/10.24432/C50P49): 8x8 digits with block counts 0..16, 3,823 training
  images from 30 writers and 1,797 test images from 13 others.
- ``mnist:DIR``: any data set in MNIST's IDX format whose four files carry MNIST's original names
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``), each raw or gzip-compressed.
- ``cifar10:DIR``: CIFAR-10's binary version (``data_batch_N.bin``, ``test_batch.bin``). The
  pickled python version is refused: unpickling a file can run arbitrary code.
- ``folder:DIR``: ``DIR/<class>/*.png`` (or .jpg, .bmp, ...) through Pillow, an optional extra
  (``pip install 'cnnkit[images]'``).

Files are parsed with ``np.frombuffer``; nothing is unpickled. Every problem with a file raises
:class:`~cnnkit.errors.DataError` naming the file, what was expected, what was found and a fix.
Every read is bounded before memory is spent: only regular files are opened (a FIFO or a device
is refused, never read), headers are checked against the file's size, gzip is inflated 1 MiB at
a time, and sizes that would not fit in :func:`available_memory` are refused with the arithmetic.
``read_image`` is the one image reader, shared by ``folder:DIR`` and ``cnnkit predict``.
"""

from __future__ import annotations

from cnnkit.data.batching import batches, random_shift
from cnnkit.data.cifar import CIFAR10_CLASSES, CIFAR10_RECORD, cifar10_classes, load_cifar10_dir
from cnnkit.data.dataset import (
    DIGITS,
    SOURCES,
    STD_FLOOR,
    Dataset,
    channel_stats,
    load_dataset,
    normalize,
)
from cnnkit.data.folder import (
    FOLDER_TEST_FRACTION,
    IMAGE_SUFFIXES,
    image_folder_classes,
    load_image_folder,
)
from cnnkit.data.idx import load_idx, load_mnist_dir
from cnnkit.data.images import read_image
from cnnkit.data.memory import available_memory
from cnnkit.data.optdigits import OPTDIGITS_MAX, OPTDIGITS_SHA256, load_optdigits

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_RECORD",
    "DIGITS",
    "FOLDER_TEST_FRACTION",
    "IMAGE_SUFFIXES",
    "OPTDIGITS_MAX",
    "OPTDIGITS_SHA256",
    "SOURCES",
    "STD_FLOOR",
    "Dataset",
    "available_memory",
    "batches",
    "channel_stats",
    "cifar10_classes",
    "image_folder_classes",
    "load_cifar10_dir",
    "load_dataset",
    "load_idx",
    "load_image_folder",
    "load_mnist_dir",
    "load_optdigits",
    "normalize",
    "random_shift",
    "read_image",
]
