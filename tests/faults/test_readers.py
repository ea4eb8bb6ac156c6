"""Hostile files given to cnnkit's readers: every read is bounded before memory is spent.

Bombs and lying files are made here, small on disk and claiming huge sizes: gzip bombs and IDX
headers, FIFOs and devices, PNG headers of 9000x9000 pixels, oversized (sparse) files. Each case
ends in one cnnkit error naming the file, checked in the API and on the command line (one line
on stderr, exit code 2). The IDX header sweep with many examples runs under ``make faults``.
"""

import gzip
import json
import os
import re
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit import cli
from cnnkit.data import load_idx, load_image_folder, load_mnist_dir, memory
from cnnkit.data._files import MAX_INFLATE_RATIO, open_regular, read_bounded
from cnnkit.errors import DataError, ShapeError

MNIST_NAMES = {
    "images": "train-images-idx3-ubyte",
    "labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def one_line_error(capsys, args, pattern):
    """Run the CLI; it must exit 2 with exactly one line on stderr matching ``pattern``."""
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cnnkit: error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def idx_header(*dims):
    return bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def gzip_bomb(path, header, zeros):
    """``header`` then ``zeros`` zero bytes, deflated 1 MiB at a time (never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with open(path, "wb") as file:
        file.write(packer.compress(header))
        for _ in range(zeros >> 20):
            file.write(packer.compress(chunk))
        file.write(packer.flush())
    return path


def mnist_dir(tmp_path, images_file=None):
    """An MNIST-format folder of 4 images of 2x2, with ``images_file`` as the training images."""
    root = tmp_path / "mnist"
    root.mkdir()
    (root / MNIST_NAMES["images"]).write_bytes(idx_header(4, 2, 2) + bytes(16))
    for key in ("labels", "test_labels"):
        (root / MNIST_NAMES[key]).write_bytes(idx_header(4) + bytes(4))
    (root / MNIST_NAMES["test_images"]).write_bytes(idx_header(4, 2, 2) + bytes(16))
    if images_file is not None:
        (root / MNIST_NAMES["images"]).unlink()
        shutil.copy(images_file, root / (MNIST_NAMES["images"] + ".gz"))
    return root


def peak_while(function, *args):
    """(result or the DataError raised, peak bytes that Python and NumPy allocated)."""
    tracemalloc.start()
    try:
        result = function(*args)
    except DataError as error:
        result = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


# ---------------------------------------------------------------------------------------------
# 1. IDX files: bounded inflation, headers checked before allocation


def test_a_gzip_bomb_stops_at_the_size_its_header_declares(tmp_path, capsys):
    bomb = gzip_bomb(tmp_path / "bomb.gz", idx_header(4, 2, 2), 256 << 20)  # 256 MiB of zeros
    assert bomb.stat().st_size < 1 << 20
    error, peak = peak_while(load_idx, bomb)
    assert isinstance(error, DataError)
    assert re.match(
        r"bomb.gz: at least 1,048,576 unexpected bytes after the 16 data bytes that the header "
        r"declares \(4x2x2\); the file is damaged, download it again$",
        str(error),
    )
    assert peak < 8 << 20  # the 256 MiB were never inflated
    root = mnist_dir(tmp_path, bomb)
    one_line_error(
        capsys,
        ["train", "--data", f"mnist:{root}", "--epochs", "1", "--out", str(tmp_path / "run")],
        r"train-images-idx3-ubyte.gz: at least 1,048,576 unexpected bytes after the 16 data",
    )


def test_a_header_claiming_more_than_gzip_can_inflate_is_refused_before_allocating(tmp_path):
    liar = tmp_path / "liar.gz"
    liar.write_bytes(gzip.compress(idx_header(60000, 2**16, 2**16) + bytes(100)))
    error, peak = peak_while(load_idx, liar)
    size = liar.stat().st_size
    message = (
        rf"liar.gz: the header declares 60000x65536x65536 = 257,698,037,760,000 data bytes, "
        rf"but {size} bytes of gzip data inflate to at most {MAX_INFLATE_RATIO * size:,} "
        rf"\(deflate's limit is 1032:1\); the file is truncated or damaged, download it again"
    )
    assert isinstance(error, DataError) and re.fullmatch(message, str(error))
    assert peak < 1 << 20


def test_a_raw_file_whose_size_does_not_match_its_header_is_refused_before_reading(tmp_path):
    liar = tmp_path / "raw"
    liar.write_bytes(idx_header(60000, 2**16, 2**16) + bytes(100))
    error, peak = peak_while(load_idx, liar)
    assert re.fullmatch(
        r"raw: truncated: 100 data bytes after the header, expected 257,698,037,760,000 "
        r"\(60000x65536x65536\); download the file again",
        str(error),
    )
    assert peak < 1 << 20


def test_a_header_beyond_the_memory_available_is_refused_with_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    path = tmp_path / "big"
    path.write_bytes(idx_header(3, 40, 40) + bytes(4800))
    message = (
        r"^big: the 3x40x40 data bytes that the header declares need 4,800 bytes \(4.7 KiB\), "
        r"but only 1,000 bytes of memory is available; free memory, or use a smaller data set$"
    )
    with pytest.raises(DataError, match=message):
        load_idx(path)


def test_the_float32_images_of_an_mnist_folder_are_checked_against_memory(tmp_path, monkeypatch):
    root = mnist_dir(tmp_path)
    monkeypatch.setattr(memory, "available_memory", lambda: 40)
    message = (
        r"^train-images-idx3-ubyte: 4 images of 2x2 as float32 \(4 x 2 x 2 x 4 bytes\) need "
        r"64 bytes, but only 40 bytes of memory is available"
    )
    with pytest.raises(DataError, match=message):
        load_mnist_dir(root)


def test_a_truncated_gzip_stream_is_one_line(tmp_path, capsys):
    packed = gzip.compress(idx_header(4, 2, 2) + bytes(range(16)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[:-9])
    with pytest.raises(DataError, match=r"^cut.gz: the gzip data is damaged \(.*\); download"):
        load_idx(cut)
    root = mnist_dir(tmp_path, cut)
    one_line_error(
        capsys,
        ["train", "--data", f"mnist:{root}", "--epochs", "1", "--out", str(tmp_path / "run")],
        r"train-images-idx3-ubyte.gz: the gzip data is damaged",
    )


def test_cifar_files_are_capped_on_disk_and_inflated(tmp_path, monkeypatch, capsys):
    from cnnkit.data import cifar

    sparse = tmp_path / "test_batch.bin"
    with open(sparse, "wb") as file:
        file.truncate(300_000_000)  # sparse: claimed, not on disk
    message = (
        r"test_batch.bin: 300,000,000 bytes, more than the 268,435,456 bytes cnnkit reads from "
        r"one data file; is it the right file\? split it into smaller files$"
    )
    with pytest.raises(DataError, match=message):
        cifar.load_cifar10_dir(tmp_path, "test")
    (tmp_path / "data_batch_1.bin").write_bytes(bytes(cifar.CIFAR10_RECORD))
    out = str(tmp_path / "run")
    one_line_error(capsys, ["train", "--data", f"cifar10:{tmp_path}", "--out", out], message)
    sparse.unlink()
    gzip_bomb(sparse, b"", 8 << 20)
    monkeypatch.setattr(cifar, "MAX_BATCH_BYTES", 1 << 20)
    error, peak = peak_while(cifar.load_cifar10_dir, tmp_path, "test")
    assert re.fullmatch(
        r"test_batch.bin: holds more than the 1,048,576 bytes cnnkit inflates out of one data "
        r"file; is it the right file\? split it into smaller files",
        str(error),
    )
    assert peak < 6 << 20


# ---------------------------------------------------------------------------------------------
# IDX headers from hypothesis: loads what the file holds, or one DataError; never allocates more


@st.composite
def idx_files(draw):
    """(file bytes, payload the header promises or None) for random magic, type, dims, cuts."""
    zero = draw(st.sampled_from([b"\x00\x00", b"\x00\x00", b"\x00\x00", b"\x01\x00", b"\x1f\x00"]))
    type_byte = draw(st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D, 0x00, 0xFF]))
    ndim = draw(st.one_of(st.integers(0, 4), st.integers(5, 255)))
    small = st.integers(0, 5)
    huge = st.integers(2**20, 2**32 - 1)
    dims = draw(st.lists(st.one_of(small, small, huge), min_size=ndim, max_size=ndim))
    declared = int(np.prod(dims, dtype=object)) if dims else 1
    body = draw(st.integers(0, 64)) if declared > 4096 else declared + draw(st.integers(-3, 3))
    content = zero + bytes([type_byte, ndim]) + struct.pack(f">{ndim}I", *dims)
    content += bytes(range(256)) * (max(body, 0) // 256) + bytes(range(max(body, 0) % 256))
    content = content[: draw(st.integers(0, len(content)))] if draw(st.booleans()) else content
    packed = gzip.compress(content) if draw(st.booleans()) else content
    if packed is not content and draw(st.integers(0, 3)) == 0:
        packed = packed[: draw(st.integers(0, len(packed)))]
    return packed, content, dims


def check_idx_file(tmp_path, case):
    packed, content, dims = case
    path = tmp_path / "case"
    path.write_bytes(packed)
    result, peak = peak_while(load_idx, path)
    declared = int(np.prod(dims, dtype=object)) if dims else 0
    bound = min(declared, MAX_INFLATE_RATIO * len(packed), len(content)) + (3 << 20)
    assert peak <= bound, (peak, bound)
    if isinstance(result, DataError):
        assert str(result).startswith("case: ") and "\n" not in str(result)
        return
    header = 4 + 4 * len(dims)
    assert result.shape == tuple(dims) and result.dtype == np.uint8
    assert result.tobytes() == content[header:]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=idx_files())
def test_idx_headers_load_consistently_or_raise_one_data_error(tmp_path, case):
    check_idx_file(tmp_path, case)


@pytest.mark.sweep
@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=idx_files())
def test_idx_header_sweep(tmp_path, case):
    check_idx_file(tmp_path, case)


# ---------------------------------------------------------------------------------------------
# 3. FIFOs, devices, directories and oversized files


@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def test_open_regular_refuses_a_fifo_without_blocking_and_a_device(fifo):
    with pytest.raises(DataError, match=r"pipe.png: is a FIFO \(named pipe\), not a regular file"):
        open_regular(fifo)
    with pytest.raises(DataError, match=r"^/dev/zero: is a character device, not a regular file"):
        read_bounded("/dev/zero", 10, "a test may read", "fix")


def test_read_bounded_refuses_a_file_larger_than_its_cap_before_reading(tmp_path):
    path = tmp_path / "big"
    with open(path, "wb") as file:
        file.truncate(10**9)  # sparse: a billion bytes claimed, none on disk
    message = r"big: 1,000,000,000 bytes, more than the 1,024 bytes a test may read; shrink it$"
    with pytest.raises(DataError, match=message):
        read_bounded(path, 1024, "a test may read", "shrink it")


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("/dev/zero", r"cannot read /dev/zero: is a character device, not a regular file; give"),
        ("FIFO", r"cannot read .*pipe.png: is a FIFO \(named pipe\), not a regular file; give"),
        ("DIR", r"cannot read .*: is a directory, not a regular file; give the path of a file$"),
        (
            "SPARSE",
            r"cannot read .*huge.json: 5,000,000 bytes, more than the 4,194,304 bytes a values "
            r"file may hold; explain is for small examples",
        ),
    ],
)
def test_explain_values_refuses_what_could_never_be_meant(tmp_path, fifo, capsys, name, pattern):
    if name == "SPARSE":
        with open(tmp_path / "huge.json", "wb") as file:
            file.truncate(5_000_000)
    path = {"FIFO": fifo, "DIR": tmp_path, "SPARSE": tmp_path / "huge.json"}.get(name, name)
    one_line_error(
        capsys, ["explain", "conv", "--values", str(path)], "explain conv --values: " + pattern
    )


def test_idx_and_folder_loaders_refuse_a_fifo(tmp_path, fifo):
    with pytest.raises(DataError, match=r"pipe.png: is a FIFO \(named pipe\)"):
        load_idx(fifo)
    pytest.importorskip("PIL.Image")
    (tmp_path / "a").mkdir()
    shutil.move(fifo, tmp_path / "a" / "pipe.png")
    with pytest.raises(DataError, match=r"a/pipe.png: is a FIFO \(named pipe\), not a regular"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------------------------------------
# 4. Folder data sets refused from the image headers; Pillow's bomb limit is one line


def png_header(width, height):
    """A small PNG that claims width x height RGB pixels (one row of data follows)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def lying_folder(root, count, width, height):
    data = png_header(width, height)
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count // 2 if split == "train" else 1):
                (folder / f"{i}.png").write_bytes(data)
    return root


def test_a_folder_of_huge_images_is_refused_from_the_headers(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL.Image")
    root = lying_folder(tmp_path / "data", 12, 9000, 9000)
    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    message = (
        r"^folder:.*data: 12 images of 3x9000x9000 as float32 \(12 x 3 x 9000 x 9000 x 4 bytes\) "
        r"need 11,664,000,000 bytes \(10.9 GiB\), but only 1,073,741,824 bytes \(1.0 GiB\) of "
        r"memory is available; use smaller images \(resize them, for example with Pillow's "
        r"Image.resize\) or fewer$"
    )
    with pytest.raises(DataError, match=message):
        load_image_folder(root, "train")
    one_line_error(
        capsys,
        ["train", "--data", f"folder:{root}", "--epochs", "1", "--out", str(tmp_path / "run")],
        message[1:],
    )


def test_a_folder_larger_than_any_memory_is_refused_without_a_stub(tmp_path):
    pytest.importorskip("PIL.Image")
    root = lying_folder(tmp_path / "data", 400, 9000, 9000)  # 400 x 972 MB claimed, 40 KB on disk
    with pytest.raises(DataError, match=r"400 images of 3x9000x9000 as float32 .* need "):
        load_image_folder(root, "train")


def test_pillows_bomb_limit_is_one_line_in_the_folder_loader_and_predict(tmp_path, capsys, run):
    pytest.importorskip("PIL.Image")
    root = lying_folder(tmp_path / "data", 2, 20000, 20000)
    message = (
        r"0.png: refused by Pillow's decompression-bomb check: Image size \(400000000 pixels\)"
    )
    with pytest.raises(DataError, match=message):
        load_image_folder(root)
    warned = tmp_path / "warned.png"  # between Pillow's warning and error limits
    warned.write_bytes(png_header(10000, 10000))
    one_line_error(capsys, ["predict", run, str(warned)], r"warned.png: refused by Pillow's")
    one_line_error(capsys, ["predict", run, str(warned), "--resize"], r"decompression-bomb check")


# ---------------------------------------------------------------------------------------------
# 5. One image reader: predict reads what training reads


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained for one epoch on the embedded 8x8 digits (1 channel)."""
    path = str(tmp_path_factory.mktemp("run") / "run")
    assert cli.main(["train", "--epochs", "1", "--quiet", "--out", path]) == 0
    return path


def predicted(capsys, args):
    assert cli.main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_reads_a_16_bit_png_as_training_does(tmp_path, capsys, run):
    image_module = pytest.importorskip("PIL.Image")
    from cnnkit.cli.evaluate import read_image

    eight = np.random.default_rng(0).integers(0, 256, size=(8, 8), dtype=np.uint8)
    image_module.fromarray(eight, mode="L").save(tmp_path / "eight.png")
    image_module.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    assert image_module.open(tmp_path / "sixteen.png").mode == "I;16"
    (tmp_path / "folder" / "a").mkdir(parents=True)
    shutil.copy(tmp_path / "sixteen.png", tmp_path / "folder" / "a" / "0.png")
    shutil.copy(tmp_path / "sixteen.png", tmp_path / "folder" / "a" / "1.png")
    training, _ = load_image_folder(tmp_path / "folder", test_fraction=0.5)
    read = read_image(str(tmp_path / "sixteen.png"), (1, 8, 8))
    np.testing.assert_array_equal(read, training[0])
    np.testing.assert_allclose(read[0], eight / np.float32(255), rtol=1e-6)
    same = predicted(capsys, ["predict", run, str(tmp_path / "eight.png")])[0]["top"]
    assert predicted(capsys, ["predict", run, str(tmp_path / "sixteen.png")])[0]["top"] == same


@pytest.mark.parametrize(
    ("mode", "channels", "expected"),
    [
        ("1", 1, [[[0.0, 1.0]]]),
        ("L", 1, [[[0.0, 1.0]]]),
        ("LA", 3, [[[0.0, 1.0]]] * 3),
        ("RGBA", 3, [[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]),
        ("P", 3, [[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]),
        ("I;16", 1, [[[0.0, 1.0]]]),
        ("I;16", 3, [[[0.0, 1.0]]] * 3),
    ],
)
def test_read_image_scales_every_mode_into_0_1(tmp_path, mode, channels, expected):
    image_module = pytest.importorskip("PIL.Image")
    from cnnkit.data.images import read_image

    colour = image_module.new("RGB", (2, 1))
    colour.putpixel((0, 0), (255, 0, 0))
    colour.putpixel((1, 0), (0, 255, 0))
    gray = image_module.new("L", (2, 1))
    gray.putpixel((1, 0), 255)
    image = {
        "1": gray.convert("1"),
        "L": gray,
        "LA": gray.convert("LA"),
        "RGBA": colour.convert("RGBA"),
        "P": colour.convert("P"),
        "I;16": image_module.fromarray(np.array([[0, 65535]], np.uint16)),
    }[mode]
    assert image.mode == mode
    image.save(tmp_path / "x.png")
    pixels = read_image(tmp_path / "x.png", channels, (1, 2))
    assert pixels.dtype == np.float32 and pixels.shape == (channels, 1, 2)
    np.testing.assert_array_equal(pixels, np.array(expected, np.float32))


def test_predict_refuses_another_size_naming_both_and_resizes_on_request(tmp_path, capsys, run):
    image_module = pytest.importorskip("PIL.Image")
    from cnnkit.data.images import read_image

    big = tmp_path / "big.png"
    image_module.new("L", (16, 24), 255).save(big)
    one_line_error(
        capsys,
        ["predict", run, str(big)],
        r"big.png: the image is 24x16 but the network takes 8x8; resize it first, or pass "
        r"--resize to scale it to 8x8$",
    )
    with pytest.raises(ShapeError, match=r"the image is 24x16 but the network takes 8x8"):
        read_image(big, 1, (8, 8))
    np.testing.assert_array_equal(read_image(big, 1, (8, 8), resize=True), np.ones((1, 8, 8)))
    assert len(predicted(capsys, ["predict", run, str(big), "--resize"])[0]["top"]) == 3


def test_predict_refuses_a_fifo_a_device_and_an_oversized_image(tmp_path, fifo, capsys, run):
    pytest.importorskip("PIL.Image")
    one_line_error(capsys, ["predict", run, str(fifo)], r"pipe.png: is a FIFO \(named pipe\)")
    one_line_error(capsys, ["predict", run, "/dev/zero"], r"/dev/zero: is a character device")
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as file:
        file.truncate(300 << 20)  # sparse
    one_line_error(
        capsys,
        ["predict", run, str(huge)],
        r"huge.png: 314,572,800 bytes, more than the 268,435,456 bytes an image file may hold; "
        r"use a smaller image$",
    )


def test_available_memory_is_a_plausible_number():
    found = memory.available_memory()
    if not hasattr(os, "sysconf") or found is None:
        pytest.skip("the memory available is not known here")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < found <= total
