"""Reading a checkpoint's ``.npz`` archive with every size checked before memory is spent.

safetensors is the model: its header is capped and every offset is validated before anything
is allocated. Here :func:`open_archive` opens the zip (a regular file only), caps the number of
members, and reads each member's ``.npy`` header, never its data: the declared shape and dtype
(plain numbers only: no object, structured, string or complex arrays, nothing that pickles)
must account for exactly the member's size in the zip, and the declared total is bounded.
:func:`check_members` then compares what is declared with what a model expects (names, shapes,
dtypes), still before reading; :meth:`Archive.read` reads one member in bounded chunks.

Every refusal is a :class:`~cnnkit.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from cnnkit.errors import DataError

HEADER_KEY = "__header__"
GROUPS = ("model", "optimizer", "extra")
MAX_MEMBERS = 4096
MAX_HEADER_BYTES = 8 * 2**20  # the JSON header (history grows with the epochs)
MAX_NPY_HEADER = 10_000  # numpy's own cap on a .npy header
MAX_TOTAL_BYTES = 4 * 2**30  # every array together, as declared
KINDS = {"b": "bool", "i": "integer", "u": "integer", "f": "floating-point"}
EXTRA_KEYS = {"order": "i"}  # the extras a training checkpoint holds, and their kind
_CHUNK = 16 * 2**20
_OPTIMIZER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.([0-9]{1,6})")
_FIX = (
    "the file is damaged or not a cnnkit checkpoint: use the run's other checkpoint or train again"
)


@dataclass(frozen=True)
class Member:
    """One array of the archive as its ``.npy`` header declares it (nothing read yet)."""

    name: str  # the key without ``.npy``: ``__header__``, ``model/0.weight``, ...
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # where the data starts in the member: the size of the .npy header

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class Archive:
    """An open checkpoint archive whose members are declared and checked, not yet read."""

    def __init__(self, path: Path, zip_file: zipfile.ZipFile, members: dict[str, Member]):
        self.path, self._zip, self.members = path, zip_file, members

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def groups(self) -> dict[str, dict[str, Member]]:
        """The members by prefix (``model``, ``optimizer``, ``extra``), keyed without it."""
        groups: dict[str, dict[str, Member]] = {group: {} for group in GROUPS}
        for name, member in self.members.items():
            if name != HEADER_KEY:
                prefix, _, key = name.partition("/")
                groups[prefix][key] = member
        return groups

    def read_header_bytes(self) -> bytes:
        member = self.members[HEADER_KEY]
        if member.dtype != np.uint8 or len(member.shape) != 1:
            raise DataError(
                f"{self.path}: the checkpoint header is {_declared(member)}, not 1-D uint8 "
                f"(UTF-8 JSON); {_FIX}"
            )
        return self.read(member).tobytes()

    def read(self, member: Member) -> np.ndarray:
        """The member's array, read in bounded chunks into memory sized from its checked
        declaration (a short or corrupted member raises DataError)."""
        flat = np.empty(math.prod(member.shape), member.dtype)
        view = memoryview(flat.view(np.uint8))
        try:
            with self._zip.open(member.info) as stream:
                _read_exactly(stream, member.offset)
                done = 0
                while done < len(view):
                    chunk = stream.read(min(_CHUNK, len(view) - done))
                    if not chunk:
                        raise EOFError("the member ends early")
                    view[done : done + len(chunk)] = chunk
                    done += len(chunk)
                stream.read(1)  # at the end: the zip checks the member's CRC
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as error:
            raise DataError(
                f"{self.path}: {member.name} cannot be read ({error}); {_FIX}"
            ) from None
        array = flat.reshape(member.shape, order="F" if member.fortran else "C")
        return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def open_archive(path: Path) -> Archive:
    """Open ``path`` and check every member's declaration; nothing but headers is read."""
    try:
        # non-blocking, so that a FIFO is refused below instead of waiting for a writer
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        stream = os.fdopen(descriptor, "rb")  # closed with the archive
    except FileNotFoundError:
        raise DataError(f"{path}: no such checkpoint file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot open the checkpoint ({error.strerror or error})") from None
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise DataError(
                f"{path}: not a regular file (a device, FIFO or directory); give a checkpoint "
                "file (RUN_DIR/best.npz or last.npz)"
            )
        zip_file = zipfile.ZipFile(stream)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as error:
        stream.close()
        raise DataError(
            f"{path}: not a readable cnnkit checkpoint (the .npz archive is truncated or is "
            f"another kind of file: {error})"
        ) from None
    except DataError:
        stream.close()
        raise
    try:
        members = _scan(path, zip_file, os.fstat(stream.fileno()).st_size)
    except BaseException:
        zip_file.close()
        stream.close()
        raise
    return Archive(path, zip_file, members)


def _scan(path: Path, zip_file: zipfile.ZipFile, file_size: int) -> dict[str, Member]:
    infos = zip_file.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DataError(
            f"{path}: {len(infos)} members in the archive, more than a checkpoint has "
            f"({MAX_MEMBERS} at most); {_FIX}"
        )
    if HEADER_KEY + ".npy" not in {info.filename for info in infos}:
        raise DataError(f"{path}: an .npz archive, but not a cnnkit checkpoint (no header)")
    members: dict[str, Member] = {}
    for info in infos:
        member = _declare(path, zip_file, info, file_size)
        if member.name in members:
            raise DataError(f"{path}: the archive holds {member.name!r} twice; {_FIX}")
        members[member.name] = member
    total = sum(member.nbytes for member in members.values())
    if total > MAX_TOTAL_BYTES:
        raise DataError(
            f"{path}: the arrays declare {total:,} bytes in all, more than the "
            f"{MAX_TOTAL_BYTES:,} a checkpoint may hold; {_FIX}"
        )
    header = members.get(HEADER_KEY)
    if header is not None and header.nbytes > MAX_HEADER_BYTES:
        raise DataError(
            f"{path}: the checkpoint header declares {header.nbytes:,} bytes, more than the "
            f"{MAX_HEADER_BYTES:,} a header may have; {_FIX}"
        )
    return members


def _declare(path: Path, zip_file: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> Member:
    """A member's declared shape and dtype, checked against its size in the zip."""
    name = info.filename.removesuffix(".npy")
    prefix, slash, key = name.partition("/")
    if not info.filename.endswith(".npy") or not (
        name == HEADER_KEY or (slash and prefix in GROUPS and key)
    ):
        raise DataError(
            f"{path}: unexpected entry {name[:80]!r} in the checkpoint (only __header__, "
            f"model/<name>, optimizer/<key> and extra/<key>); {_FIX}"
        )
    mode = info.external_attr >> 16
    if info.is_dir() or info.flag_bits & 0x1 or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise DataError(f"{path}: {name} is not a plain archive member; {_FIX}")
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (
        info.compress_size > size or (stored and info.compress_size != info.file_size)
    ):
        raise DataError(
            f"{path}: {name} declares {info.file_size:,} bytes stored in {info.compress_size:,} "
            f"(of a {size:,}-byte file); {_FIX}"
        )
    try:
        with zip_file.open(info) as stream:
            version = npy.read_magic(stream)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version}")
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)
            offset = stream.tell()
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        TypeError,
        SyntaxError,
        NotImplementedError,
    ) as error:
        raise DataError(
            f"{path}: {name} is not a readable array ({str(error)[:200]}); {_FIX}"
        ) from None
    member = Member(name, info, tuple(shape), dtype, bool(fortran), offset)
    _check_declaration(path, member)
    return member


def _check_declaration(path: Path, member: Member) -> None:
    dtype = member.dtype
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(
            f"{path}: {member.name} is declared as {dtype} (kind {dtype.kind!r}); a checkpoint "
            f"holds only plain numeric arrays (bool, integer, floating-point); {_FIX}"
        )
    if any(not isinstance(n, int) or n < 0 for n in member.shape) or len(member.shape) > 32:
        raise DataError(f"{path}: {member.name} declares the shape {member.shape}; {_FIX}")
    declared = member.offset + member.nbytes
    if declared != member.info.file_size:
        raise DataError(
            f"{path}: {member.name} declares {_declared(member)} ({member.nbytes:,} bytes of "
            f"data) but the member holds {member.info.file_size - member.offset:,}; {_FIX}"
        )


def check_members(path: Path, groups: dict[str, dict[str, Member]], model) -> None:
    """Check the declared members against ``model`` (anything with ``state_dict()`` and
    ``parameters()``) before any is read: the model's names exactly, each with the model's
    shape and kind of dtype; optimizer buffers ``<name>.<i>`` shaped as parameter ``i``; the
    extras a training checkpoint holds. Without a model only the kinds are checked."""
    if model is None:
        _check_kinds(path, "model", groups["model"], "fiu")
        _check_kinds(path, "optimizer", groups["optimizer"], "fiu")
        return
    _check_model(path, groups["model"], model.state_dict())
    shapes = [tuple(parameter.data.shape) for parameter in model.parameters()]
    for key, member in groups["optimizer"].items():
        match = _OPTIMIZER_KEY.fullmatch(key)
        if match is None or int(match.group(1)) >= len(shapes):
            raise DataError(
                f"{path}: unexpected optimizer entry {key[:80]!r} (the model has {len(shapes)} "
                f"parameters); {_FIX}"
            )
        expected = shapes[int(match.group(1))]
        if member.shape != expected or member.dtype.kind != "f":
            raise DataError(
                f"{path}: optimizer/{key} is {_declared(member)}, the model's parameter "
                f"{match.group(1)} needs floating-point {_shape_text(expected)}; {_FIX}"
            )
    for key, member in groups["extra"].items():
        kinds = EXTRA_KEYS.get(key)
        if kinds is None or member.dtype.kind not in kinds + "u" or len(member.shape) != 1:
            raise DataError(
                f"{path}: unexpected extra entry {key[:80]!r} ({_declared(member)}); a training "
                f"checkpoint holds only {sorted(EXTRA_KEYS)} as 1-D integer arrays; {_FIX}"
            )


def _check_model(path: Path, members: dict[str, Member], state: dict) -> None:
    missing = [name for name in state if name not in members]
    unexpected = sorted(set(members) - set(state))
    if missing or unexpected:
        raise DataError(
            f"{path}: the checkpoint does not fit the architecture: missing "
            f"{missing[:4] or 'nothing'}, unexpected {unexpected[:4] or 'nothing'}; the "
            "weights were saved from another network (check the run's spec)"
        )
    for name, array in state.items():
        member, expected = members[name], np.asarray(array)
        kinds = "f" if expected.dtype.kind == "f" else "iu" if expected.dtype.kind in "iu" else "b"
        if member.shape != expected.shape:
            raise DataError(
                f"{path}: model/{name} has shape {_shape_text(member.shape)}, the model expects "
                f"{_shape_text(expected.shape)}; the weights were saved from another network"
            )
        if member.dtype.kind not in kinds:
            raise DataError(
                f"{path}: model/{name} is {member.dtype}, the model expects "
                f"{KINDS[expected.dtype.kind]} values ({expected.dtype}); {_FIX}"
            )


def _check_kinds(path: Path, group: str, members: dict[str, Member], kinds: str) -> None:
    for key, member in members.items():
        if member.dtype.kind not in kinds:
            raise DataError(
                f"{path}: {group}/{key} is {member.dtype}; weights and optimizer state are "
                f"numbers (floating-point, or integer counters); {_FIX}"
            )


def _read_exactly(stream, count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, _CHUNK))
        if not chunk:
            raise EOFError("the member ends early")
        count -= len(chunk)


def _declared(member: Member) -> str:
    return f"{member.dtype} {_shape_text(member.shape)}"


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
