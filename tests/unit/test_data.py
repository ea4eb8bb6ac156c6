"""Data loaders (optdigits, IDX/MNIST, CIFAR-10 binary, image folders), Dataset, batches, shifts."""

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnkit import ConfigError, DataError, DTypeError, ShapeError, load_optdigits
from cnnkit.data import (
    CIFAR10_CLASSES,
    STD_FLOOR,
    Dataset,
    batches,
    channel_stats,
    cifar10_classes,
    image_folder_classes,
    load_cifar10_dir,
    load_dataset,
    load_idx,
    load_image_folder,
    load_mnist_dir,
    normalize,
    random_shift,
)

MNIST_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "mnist"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---------------------------------------------------------------------------------------------
# optdigits


@pytest.mark.parametrize(
    ("split", "count", "class_counts"),
    [
        ("train", 3823, [376, 389, 380, 389, 387, 376, 377, 387, 380, 382]),
        ("test", 1797, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    ],
)
def test_optdigits_counts_match_the_uci_description(split, count, class_counts):
    images, labels = load_optdigits(split)
    assert images.shape == (count, 1, 8, 8) and images.dtype == np.float32
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == class_counts
    assert images.min() == 0.0 and images.max() == 1.0


def test_unknown_split():
    with pytest.raises(ConfigError, match=r"split must be 'train' or 'test', got 'valid'"):
        load_optdigits("valid")


# ---------------------------------------------------------------------------------------------
# IDX files, written by the tests


def idx_bytes(array: np.ndarray, *, type_byte: int = 0x08) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write(path: Path, data: bytes, *, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def small_mnist(rng: np.random.Generator, n: int = 12, h: int = 5, w: int = 4):
    pixels = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    return pixels, labels


def write_mnist(directory: Path, *, compress=True, n_train=12, n_test=7, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels, labels = small_mnist(rng, n, h, w)
        write(
            directory / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(pixels), compress=compress
        )
        write(
            directory / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress=compress
        )
        arrays[prefix] = (pixels, labels)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_reads_raw_and_gzip_files(tmp_path, compress):
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 5, 4), dtype=np.uint8)
    path = write(tmp_path / "images", idx_bytes(pixels), compress=compress)
    loaded = load_idx(path, ndim=3)
    assert loaded.dtype == np.uint8 and loaded.shape == (3, 5, 4)
    np.testing.assert_array_equal(loaded, pixels)


def test_load_idx_detects_gzip_by_its_magic_bytes_not_its_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    raw_named_gz = write(tmp_path / "labels.gz", idx_bytes(labels))
    gz_named_raw = write(tmp_path / "labels", idx_bytes(labels), compress=True)
    np.testing.assert_array_equal(load_idx(raw_named_gz), labels)
    np.testing.assert_array_equal(load_idx(gz_named_raw), labels)


def test_load_idx_reads_any_number_of_dimensions_without_ndim(tmp_path):
    cube = np.arange(24, dtype=np.uint8).reshape(2, 3, 4, 1)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "x", idx_bytes(cube))), cube)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", r"f: 2 bytes is too short for an IDX file, expected a 4-byte magic number"),
        (
            b"GIF89a" + bytes(20),
            r"f: magic number 1195984440 \(0x47494638\) is not an IDX magic number, expected "
            r"2051 \(images\) or 2049 \(labels\); is it a file in MNIST's format\?",
        ),
        (
            bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + bytes(4),
            r"f: IDX type byte 0x0d \(float32\) is not supported, expected 0x08 \(unsigned "
            r"bytes\); store the data as uint8",
        ),
        (
            bytes([0, 0, 8, 3]) + struct.pack(">I", 2),
            r"f: the header is cut short at 8 bytes, expected 16 for 3 dimensions; the file is "
            r"truncated, download it again",
        ),
        (
            bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 3) + bytes(17),
            r"f: truncated: 17 data bytes after the header, expected 18 \(2x3x3\); download the "
            r"file again",
        ),
        (
            bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 3) + bytes(20),
            r"f: 2 unexpected bytes after the 18 data bytes that the header declares \(2x3x3\); "
            r"the file is damaged, download it again",
        ),
    ],
    ids=["short", "bad-magic", "type-byte", "short-header", "truncated", "trailing"],
)
def test_load_idx_refuses_corrupt_files(tmp_path, data, message):
    path = write(tmp_path / "f", data)
    with pytest.raises(DataError, match=message):
        load_idx(path)


def test_load_idx_refuses_a_damaged_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = write(tmp_path / "f.gz", packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"f.gz: the gzip data is damaged \(.*\); download"):
        load_idx(path)


def test_load_idx_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothing-here: no such file; check the path"):
        load_idx(tmp_path / "nothing-here")


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_dir_reads_both_splits(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = load_mnist_dir(tmp_path, split)
        pixels, raw_labels = arrays[prefix]
        assert images.dtype == np.float32 and images.shape == (len(pixels), 1, 5, 4)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images[:, 0], pixels.astype(np.float32) / 255)
        np.testing.assert_array_equal(labels, raw_labels)


def test_load_mnist_dir_takes_each_file_raw_or_gzipped(tmp_path):
    arrays = write_mnist(tmp_path, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(path.read_bytes()))
    path.unlink()
    np.testing.assert_array_equal(load_mnist_dir(tmp_path, "train")[1], arrays["train"][1])


def test_load_mnist_dir_says_when_image_and_label_files_are_swapped(tmp_path):
    write_mnist(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    image_bytes, label_bytes = images.read_bytes(), labels.read_bytes()
    images.write_bytes(label_bytes)
    labels.write_bytes(image_bytes)
    message = (
        r"^train-images-idx3-ubyte.gz: magic number 2049 is a label file, expected 2051 "
        r"\(images\); are the files swapped\?$"
    )
    with pytest.raises(DataError, match=message):
        load_mnist_dir(tmp_path, "train")


def test_load_mnist_dir_refuses_a_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(6, np.uint8)), compress=True)
    message = (
        r"t10k-labels-idx1-ubyte.gz: 6 labels, but t10k-images-idx3-ubyte.gz has 7 images; "
        r"expected one label per image, are the two files from different data sets\?"
    )
    with pytest.raises(DataError, match=message):
        load_mnist_dir(tmp_path, "test")


def test_load_mnist_dir_refuses_a_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    labels = np.arange(12, dtype=np.uint8) % 10
    labels[4] = 10
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(labels), compress=True)
    message = (
        r"train-labels-idx1-ubyte.gz: label 10 at position 4 is out of range, expected 0..9; "
        r"the file is damaged or holds more than 10 classes"
    )
    with pytest.raises(DataError, match=message):
        load_mnist_dir(tmp_path, "train")


def test_load_mnist_dir_lists_what_it_looked_for(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").rename(tmp_path / "t10k-images.idx3-ubyte.gz")
    message = (
        r"missing t10k-images-idx3-ubyte: looked for t10k-images-idx3-ubyte and "
        r"t10k-images-idx3-ubyte.gz \(found .*t10k-images.idx3-ubyte.gz.*: rename it\); "
        r"mnist:DIR needs MNIST's four file names: train-images-idx3-ubyte, "
        r"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz"
    )
    with pytest.raises(DataError, match=message):
        load_mnist_dir(tmp_path, "test")


def test_load_mnist_dir_refuses_a_missing_directory_and_a_file(tmp_path):
    with pytest.raises(DataError, match=r"mnist:.*absent: no such directory .*; check the path"):
        load_mnist_dir(tmp_path / "absent")
    archive = write(tmp_path / "mnist.tar.gz", b"x")
    with pytest.raises(DataError, match=r"is a file, expected a directory; if it is an archive"):
        load_mnist_dir(archive)
    with pytest.raises(ConfigError, match=r"load_mnist_dir: split must be 'train' or 'test'"):
        load_mnist_dir(tmp_path, "val")


# ---------------------------------------------------------------------------------------------
# The real MNIST in ../shared/data/mnist (skipped when absent)


@pytest.fixture(scope="module")
def mnist():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST in {MNIST_DIR}")
    return load_mnist_dir(MNIST_DIR, "train"), load_mnist_dir(MNIST_DIR, "test")


def test_real_mnist_has_the_documented_shapes_and_label_counts(mnist):
    (train_images, train_labels), (test_images, test_labels) = mnist
    assert train_images.shape == (60000, 1, 28, 28) and train_images.dtype == np.float32
    assert test_images.shape == (10000, 1, 28, 28) and test_images.dtype == np.float32
    assert train_labels.dtype == np.int64 and test_labels.dtype == np.int64
    assert np.bincount(train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == MNIST_TEST_COUNTS
    assert train_images.min() == 0.0 and train_images.max() == 1.0


def test_real_mnist_statistics_are_the_well_known_ones(mnist):
    (train_images, _), _ = mnist
    mean, std = channel_stats(train_images)
    np.testing.assert_allclose(mean, [0.1307], atol=1e-4)
    np.testing.assert_allclose(std, [0.3081], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 binary version, written by the tests


def cifar_records(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1)
    return records.tobytes(), pixels, labels


def write_cifar(directory: Path, sizes=(6, 5), n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    train_pixels, train_labels = [], []
    for number, n in enumerate(sizes, start=1):
        data, pixels, labels = cifar_records(rng, n)
        write(directory / f"data_batch_{number}.bin", data)
        train_pixels.append(pixels)
        train_labels.append(labels)
    data, test_pixels, test_labels = cifar_records(rng, n_test)
    write(directory / "test_batch.bin", data)
    return (np.concatenate(train_pixels), np.concatenate(train_labels)), (test_pixels, test_labels)


def test_load_cifar10_dir_reads_records_in_chw_order(tmp_path):
    (train_pixels, train_labels), (test_pixels, test_labels) = write_cifar(tmp_path)
    images, labels = load_cifar10_dir(tmp_path, "train")
    assert images.shape == (11, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, train_pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(labels, train_labels)
    images, labels = load_cifar10_dir(tmp_path, "test")
    np.testing.assert_array_equal(images, test_pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(labels, test_labels)
    assert cifar10_classes(tmp_path) == list(CIFAR10_CLASSES)


def test_load_cifar10_dir_orders_batches_by_number(tmp_path):
    rng = np.random.default_rng(1)
    parts = [cifar_records(rng, 2) for _ in range(11)]
    for number, (data, _, _) in enumerate(parts, start=1):
        write(tmp_path / f"data_batch_{number}.bin", data)
    _, labels = load_cifar10_dir(tmp_path, "train")
    np.testing.assert_array_equal(labels, np.concatenate([part[2] for part in parts]))


def test_load_cifar10_dir_accepts_the_standard_subfolder_and_reads_class_names(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-bin")
    names = [f"class{i}" for i in range(10)]
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert load_cifar10_dir(tmp_path, "test")[0].shape == (4, 3, 32, 32)
    assert cifar10_classes(tmp_path) == names


def test_cifar10_classes_refuses_a_meta_file_without_ten_names(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "batches.meta.txt").write_text("cat\ndog\n")
    message = r"batches.meta.txt: 2 class names, expected 10 \(one a line\); fix the file or"
    with pytest.raises(DataError, match=message):
        cifar10_classes(tmp_path)


def test_load_cifar10_dir_refuses_a_file_of_the_wrong_size(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-5])
    message = (
        r"data_batch_2.bin: 15,360 bytes is not a whole number of 3,073-byte records "
        r"\(1 label byte \+ 3,072 pixel bytes\): 4 records and 3068 bytes over; the file is "
        r"truncated or not CIFAR-10's binary version, download it again"
    )
    with pytest.raises(DataError, match=message):
        load_cifar10_dir(tmp_path, "train")


def test_load_cifar10_dir_refuses_a_label_out_of_range(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[2 * 3073] = 10
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"test_batch.bin: record 2 has label 10, expected 0..9"):
        load_cifar10_dir(tmp_path, "test")


@pytest.mark.parametrize("layout", ["folder", "parent"])
def test_load_cifar10_dir_refuses_the_pickled_python_version(tmp_path, layout):
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (pickled / name).write_bytes(b"\x80\x04not read")
    message = (
        r"this is CIFAR-10's pickled python version, which cnnkit never reads \(unpickling a "
        r"file can run arbitrary code\); download the binary version \(cifar-10-binary.tar.gz\) "
        r"and pass its cifar-10-batches-bin folder"
    )
    with pytest.raises(DataError, match=message):
        load_cifar10_dir(pickled if layout == "folder" else tmp_path, "train")


def test_load_cifar10_dir_names_the_missing_files(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    message = r"no test_batch.bin here or in a cifar-10-batches-bin subfolder; cifar10:DIR reads"
    with pytest.raises(DataError, match=message):
        load_cifar10_dir(tmp_path, "test")
    for path in tmp_path.glob("data_batch_*"):
        path.unlink()
    with pytest.raises(DataError, match=r"no data_batch_1.bin .. data_batch_5.bin here"):
        load_cifar10_dir(tmp_path, "train")


# ---------------------------------------------------------------------------------------------
# A folder of images per class, written by the tests through Pillow


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(path)


def write_folder(root: Path, classes=("cat", "ant", "bee"), per_class=5, size=(6, 5), seed=0):
    """Grayscale PNGs; returns {class: [pixels in file-name order]}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        written[name] = []
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=size, dtype=np.uint8)
            write_png(root / name / f"{i:03d}.png", pixels)
            written[name].append(pixels)
    return written


def test_load_image_folder_reads_grayscale_pngs_and_carves_a_test_set(tmp_path):
    pytest.importorskip("PIL")
    written = write_folder(tmp_path)
    (tmp_path / "bee" / "notes.txt").write_text("not an image")
    assert image_folder_classes(tmp_path) == ["ant", "bee", "cat"]
    train_images, train_labels = load_image_folder(tmp_path, "train")
    test_images, test_labels = load_image_folder(tmp_path, "test")
    assert train_images.shape == (12, 1, 6, 5) and train_images.dtype == np.float32
    assert test_images.shape == (3, 1, 6, 5) and train_labels.dtype == np.int64
    assert np.bincount(test_labels).tolist() == [1, 1, 1]  # stratified: 20% of each class
    everything = {
        (label, (pixels.astype(np.float32) / 255).tobytes())
        for label, name in enumerate(["ant", "bee", "cat"])
        for pixels in written[name]
    }
    loaded = [
        (int(label), image[0].tobytes())
        for images, labels in ((train_images, train_labels), (test_images, test_labels))
        for image, label in zip(images, labels, strict=True)
    ]
    assert len(set(loaded)) == 15 and set(loaded) == everything
    again = load_image_folder(tmp_path, "test")
    np.testing.assert_array_equal(again[0], test_images)
    other = load_image_folder(tmp_path, "test", seed=5)
    assert not np.array_equal(other[0], test_images)


def test_load_image_folder_uses_train_and_test_subfolders(tmp_path):
    pytest.importorskip("PIL")
    write_folder(tmp_path / "train", classes=("b", "a"), per_class=3)
    test = write_folder(tmp_path / "test", classes=("b",), per_class=2, seed=1)
    images, labels = load_image_folder(tmp_path, "test")
    assert labels.tolist() == [1, 1]
    np.testing.assert_array_equal(images[1, 0], test["b"][1].astype(np.float32) / 255)
    assert load_image_folder(tmp_path, "train")[0].shape == (6, 1, 6, 5)
    write_folder(tmp_path / "test", classes=("c",), per_class=1)
    with pytest.raises(DataError, match=r"class 'c' has no training folder; every test class"):
        load_image_folder(tmp_path, "train")


def test_load_image_folder_turns_rgb_when_any_image_has_colour(tmp_path):
    pytest.importorskip("PIL")
    write_folder(tmp_path, classes=("a", "b"), per_class=2)
    rgb = np.random.default_rng(3).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    write_png(tmp_path / "b" / "colour.png", rgb)
    images, labels = load_image_folder(tmp_path, "train", test_fraction=0)
    assert images.shape == (5, 3, 6, 5) and labels.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(images[4], rgb.transpose(2, 0, 1).astype(np.float32) / 255)
    np.testing.assert_array_equal(images[0, 0], images[0, 2])  # gray repeated over RGB


def test_load_image_folder_keeps_16_bit_grayscale(tmp_path):
    pytest.importorskip("PIL")
    pixels = (np.arange(30, dtype=np.uint16) * 2000).reshape(6, 5)
    write_png(tmp_path / "a" / "deep.png", pixels)
    images, _ = load_image_folder(tmp_path, "train", test_fraction=0)
    np.testing.assert_allclose(images[0, 0], pixels / 65535, rtol=1e-6)


def test_load_image_folder_refuses_mixed_sizes(tmp_path):
    pytest.importorskip("PIL")
    write_folder(tmp_path, classes=("a", "b"), per_class=2)
    write_png(tmp_path / "b" / "big.png", np.zeros((7, 5), np.uint8))
    message = (
        r"b/big.png: 5x7 pixels \(width x height\), but .*a/000.png is 5x6; every image must "
        r"have one size, resize them first \(for example with Pillow's Image.resize\)"
    )
    with pytest.raises(DataError, match=message):
        load_image_folder(tmp_path)


def test_load_image_folder_refuses_bad_layouts_and_unreadable_files(tmp_path):
    pytest.importorskip("PIL")
    write_png(tmp_path / "loose.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"no class folders \(found 1 images directly in it\)"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no images \(looked for .png, .jpg.*\); add"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png: not an image Pillow can read \(PNG, JPEG"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").unlink()
    (tmp_path / "empty").rmdir()
    write_folder(tmp_path / "train", classes=("a",), per_class=1)
    with pytest.raises(DataError, match=r"has train/ but no test/; add test/ with the same class"):
        load_image_folder(tmp_path)


def test_load_image_folder_without_pillow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "PIL", None)
    message = r"folder:DIR reads images with Pillow, which is not installed; pip install "
    with pytest.raises(DataError, match=message + r"'cnnkit\[images\]'"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------------------------------------
# load_dataset


def test_load_dataset_optdigits():
    data = load_dataset("optdigits", validation=0.1, seed=0)
    assert isinstance(data, Dataset) and data.name == "optdigits"
    assert data.classes == [str(d) for d in range(10)] and data.num_classes == 10
    assert data.input_shape == (1, 8, 8)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (
        3441,
        382,
        1797,
    )
    assert data.mean.shape == (1,) and data.std.shape == (1,) and data.mean.dtype == np.float32
    np.testing.assert_allclose(data.train_images.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(data.train_images.std(axis=(0, 2, 3)), 1, atol=1e-4)
    raw_test, _ = load_optdigits("test")
    np.testing.assert_allclose(
        data.test_images, normalize(raw_test, data.mean, data.std), rtol=1e-6, atol=1e-6
    )
    assert "Dataset('optdigits', 10 classes, 1x8x8, train=3441" in repr(data)


def test_load_dataset_mnist_scheme(tmp_path):
    write_mnist(tmp_path, n_train=20, n_test=10)
    data = load_dataset(f"mnist:{tmp_path}", validation=0.25)
    assert data.input_shape == (1, 5, 4) and data.classes == list("0123456789")
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (15, 5, 10)


def test_load_dataset_real_mnist(mnist):
    data = load_dataset(f"mnist:{MNIST_DIR}", validation=0.1, seed=0)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (
        54000,
        6000,
        10000,
    )
    # stratified: each digit gives 10% of its images, +-1
    assert np.all(np.abs(np.bincount(data.val_labels) - np.array(MNIST_TRAIN_COUNTS) / 10) <= 1)


def test_load_dataset_folder_scheme(tmp_path):
    pytest.importorskip("PIL")
    write_folder(tmp_path, per_class=10)
    data = load_dataset(f"folder:{tmp_path}", validation=0.25, seed=1)
    assert data.classes == ["ant", "bee", "cat"] and data.input_shape == (1, 6, 5)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (18, 6, 6)
    assert np.bincount(data.val_labels).tolist() == [2, 2, 2]


def cifar_rows(data: Dataset, split: str) -> set[bytes]:
    """The raw bytes of each image of a split, recovered from the normalised floats."""
    images = getattr(data, f"{split}_images") * data.std[:, None, None] + data.mean[:, None, None]
    pixels = np.rint(images * 255).astype(np.uint8)
    return {image.tobytes() for image in pixels}


def test_load_dataset_cifar10_splits_are_disjoint_normalised_and_stratified(tmp_path):
    (train_pixels, train_labels), _ = write_cifar(tmp_path, sizes=(40, 40), n_test=10)
    data = load_dataset(f"cifar10:{tmp_path}", validation=0.25, seed=3)
    assert data.input_shape == (3, 32, 32) and data.classes == list(CIFAR10_CLASSES)
    assert (len(data.train_labels), len(data.val_labels)) == (60, 20)
    train_rows, val_rows = cifar_rows(data, "train"), cifar_rows(data, "val")
    assert len(train_rows) == 60 and len(val_rows) == 20 and not train_rows & val_rows
    assert train_rows | val_rows == {image.tobytes() for image in train_pixels}
    counts, val_counts = (
        np.bincount(train_labels, minlength=10),
        np.bincount(data.val_labels, minlength=10),
    )
    assert np.all(np.abs(val_counts - counts * 0.25) <= 1)
    assert data.mean.shape == (3,) and data.std.shape == (3,)
    np.testing.assert_allclose(data.train_images.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(data.train_images.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert abs(float(data.val_images.mean())) < 0.1  # not normalised with its own statistics
    assert float(data.val_images.mean()) != pytest.approx(0, abs=1e-6)


def test_load_dataset_is_deterministic_and_fingerprints_its_data(tmp_path):
    write_cifar(tmp_path, sizes=(20,), n_test=5)
    first = load_dataset(f"cifar10:{tmp_path}", seed=7, validation=0.2)
    second = load_dataset(f"cifar10:{tmp_path}", seed=7, validation=0.2)
    for field in ("train_images", "train_labels", "val_images", "val_labels", "mean", "std"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 16
    other_seed = load_dataset(f"cifar10:{tmp_path}", seed=8, validation=0.2)
    assert cifar_rows(other_seed, "val") != cifar_rows(first, "val")
    assert other_seed.fingerprint != first.fingerprint
    path = tmp_path / "data_batch_1.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    changed = load_dataset(f"cifar10:{tmp_path}", seed=7, validation=0.2)
    assert changed.fingerprint != first.fingerprint


def test_dataset_is_frozen_and_read_only(tmp_path):
    data = load_dataset("optdigits", validation=0)
    assert data.val_images.shape == (0, 1, 8, 8) and data.val_labels.shape == (0,)
    assert len(data.train_labels) == 3823
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"
    with pytest.raises(ValueError, match="read-only"):
        data.train_images[0, 0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (
            "imagenet:/data",
            DataError,
            r"unknown data source 'imagenet:/data'; use one of: optdigits, mnist:DIR, "
            r"cifar10:DIR, folder:DIR",
        ),
        ("optdigits:x", DataError, r"unknown data source 'optdigits:x'"),
        ("mnist", DataError, r"unknown data source 'mnist'; use one of"),
        (
            "mnist:",
            DataError,
            r"data source 'mnist:' names no directory; write mnist:DIR, "
            r"for example mnist:data/mnist",
        ),
        (3, DTypeError, r"load_dataset: source must be a string such as 'optdigits', got 3"),
    ],
)
def test_load_dataset_refuses_unknown_sources(source, error, message):
    with pytest.raises(error, match=message):
        load_dataset(source)


@pytest.mark.parametrize("validation", [1.0, -0.1, 2])
def test_load_dataset_refuses_a_validation_fraction_outside_0_1(validation):
    message = rf"load_dataset: validation must be in \[0, 1\), got {validation}; use 0.1 for 10%"
    with pytest.raises(ConfigError, match=message):
        load_dataset("optdigits", validation=validation)


def test_load_dataset_refuses_splits_of_different_sizes(tmp_path):
    write_mnist(tmp_path)
    pixels = np.zeros((7, 6, 4), np.uint8)
    write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(pixels), compress=True)
    message = r"training images are 1x5x4 but test images are 1x6x4; both splits must share"
    with pytest.raises(DataError, match=message):
        load_dataset(f"mnist:{tmp_path}")


# ---------------------------------------------------------------------------------------------
# normalize and channel_stats


def test_normalize_matches_the_formula_and_refuses_mismatches():
    x = np.random.default_rng(0).random((4, 3, 5, 5), dtype=np.float32)
    mean, std = np.array([0.1, 0.5, 0.9], np.float32), np.array([1.0, 2.0, 0.5], np.float32)
    expected = (x - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(normalize(x, mean, std), expected, rtol=1e-6)
    np.testing.assert_allclose(normalize(x[0], mean, std), expected[0], rtol=1e-6)  # CHW
    assert normalize(x, mean, std).dtype == np.float32
    with pytest.raises(ShapeError, match=r"normalize: images of shape \(4, 3, 5, 5\) with mean"):
        normalize(x, [0.5], [1.0])
    with pytest.raises(DTypeError, match=r"normalize: images are uint8, expected floats in"):
        normalize(np.zeros((1, 1, 2, 2), np.uint8), [0.0], [1.0])


def test_channel_stats_floors_the_std_of_a_constant_channel():
    x = np.full((3, 2, 4, 4), 0.5, np.float32)
    x[:, 1] = np.random.default_rng(0).random((3, 4, 4))
    mean, std = channel_stats(x)
    assert mean[0] == pytest.approx(0.5) and std[0] == pytest.approx(STD_FLOOR)
    assert std[1] == pytest.approx(x[:, 1].std(), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# batches and random_shift


@pytest.mark.parametrize(("count", "batch_size"), [(10, 3), (9, 3), (1, 5), (0, 4)])
def test_batches_cover_every_index_exactly_once(count, batch_size):
    parts = batches(count, batch_size, np.random.default_rng(0))
    sizes = [len(part) for part in parts]
    assert sizes == [batch_size] * (count // batch_size) + (
        [count % batch_size] if count % batch_size else []
    )
    joined = np.concatenate(parts) if parts else np.zeros(0, int)
    assert sorted(joined.tolist()) == list(range(count))


def test_batches_are_seeded_and_shuffled():
    first = np.concatenate(batches(100, 32, np.random.default_rng(1)))
    again = np.concatenate(batches(100, 32, np.random.default_rng(1)))
    other = np.concatenate(batches(100, 32, np.random.default_rng(2)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and not np.array_equal(first, np.arange(100))
    np.testing.assert_array_equal(np.concatenate(batches(7, 3, None)), np.arange(7))
    with pytest.raises(ConfigError, match=r"batches: batch_size must be at least 1, got 0"):
        batches(10, 0, None)


def shift_reference(images, offsets, fill):
    """Loop oracle: out[n, c, y, x] = images[n, c, y - dy, x - dx], else fill."""
    out = np.empty_like(images)
    n, c, h, w = images.shape
    for i in range(n):
        dy, dx = offsets[i]
        for ch in range(c):
            out[i, ch] = fill[ch] if np.ndim(fill) else fill
            for y in range(h):
                for x in range(w):
                    if 0 <= y - dy < h and 0 <= x - dx < w:
                        out[i, ch, y, x] = images[i, ch, y - dy, x - dx]
    return out


@pytest.mark.parametrize("fill", [0.0, np.array([-1.0, 2.5], np.float32)])
def test_random_shift_matches_a_per_image_reference(fill):
    images = np.random.default_rng(0).random((6, 2, 5, 7), dtype=np.float32)
    shifted = random_shift(images, 2, np.random.default_rng(4), fill=fill)
    offsets = np.random.default_rng(4).integers(-2, 3, size=(6, 2))
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    np.testing.assert_array_equal(shifted, shift_reference(images, offsets, fill))


def test_random_shift_moves_content_down_and_right_for_positive_offsets():
    images = np.zeros((200, 1, 5, 5), np.float32)
    images[:, 0, 2, 2] = 1.0
    shifted = random_shift(images, 1, np.random.default_rng(0))
    offsets = np.random.default_rng(0).integers(-1, 2, size=(200, 2))
    assert np.count_nonzero(shifted[:, 0].sum(axis=0)) == 9  # every offset in [-1, 1]^2 drawn
    for image, (dy, dx) in zip(shifted[:, 0], offsets, strict=True):
        assert image[2 + dy, 2 + dx] == 1.0 and image.sum() == 1.0


def test_random_shift_zero_is_identity_and_seeded():
    images = np.random.default_rng(0).random((4, 3, 6, 6), dtype=np.float32)
    same = random_shift(images, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(same, images)
    assert same is not images
    first = random_shift(images, 3, np.random.default_rng(9))
    np.testing.assert_array_equal(first, random_shift(images, 3, np.random.default_rng(9)))
    uint8 = random_shift(np.ones((2, 1, 4, 4), np.uint8), 1, np.random.default_rng(0))
    assert uint8.dtype == np.uint8
    with pytest.raises(ConfigError, match=r"random_shift: max_shift must be at least 0, got -1"):
        random_shift(images, -1, np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"random_shift: images of shape \(3, 6, 6\), expected"):
        random_shift(images[0], 1, np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"random_shift: fill has 2 values for 3 channels"):
        random_shift(images, 1, np.random.default_rng(0), fill=[0.0, 1.0])
