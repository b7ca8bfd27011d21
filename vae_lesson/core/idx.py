"""Read the IDX format that the original MNIST files use (LeCun et al.), gzipped or not.

Layout: two zero bytes, a type code, the number of dimensions ``n``; then ``n`` big-endian int32 sizes;
then the values, big-endian, row-major. MNIST images have magic number 2051 (``0x00000803``: unsigned bytes,
3 dimensions), labels 2049 (``0x00000801``). This module only reads; nothing here touches the network.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np

# type code -> big-endian NumPy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` is detected by content, not by name) into a NumPy array of its shape.

    Raises ``ValueError`` naming the file for a wrong magic number, a rank other than ``expected_ndim``,
    a negative size in the header, or data that is truncated or longer than the header says;
    ``FileNotFoundError`` naming it if it does not exist. A file with a zero size (say 0 images) is valid IDX:
    the array is empty (:func:`vae_lesson.load_mnist` then refuses it).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file name (str or pathlib.Path), got {type(path).__name__}")
    if expected_ndim is not None and (isinstance(expected_ndim, bool) or not isinstance(expected_ndim, int)
                                      or expected_ndim < 0):
        raise TypeError(f"expected_ndim: expected an int >= 0 or None, got {expected_ndim!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: expected an existing IDX file, got {path!r}")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: expected a complete gzip file, got a damaged one ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        got = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise ValueError(f"{path}: expected an IDX file (magic number 0x0000TTNN, e.g. 0x00000803 "
                         f"for MNIST images), got magic {got}")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        magic = int.from_bytes(raw[:4], "big")
        raise ValueError(f"{path}: expected an IDX file with {expected_ndim} dimensions, got {ndim} "
                         f"(magic number {magic})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: expected a header of {header} bytes, got a truncated file of {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    if any(size < 0 for size in shape):
        raise ValueError(f"{path}: expected sizes >= 0 in the IDX header, got shape {list(shape)} (a damaged header)")
    count = math.prod(shape)  # Python ints: a damaged header cannot overflow it
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = "truncated data" if len(raw) < expected else "trailing bytes"
        raise ValueError(f"{path}: expected {expected} bytes for shape {list(shape)}, got {len(raw)} ({what})")
    return np.frombuffer(raw, dtype=dtype, offset=header, count=count).reshape(shape).astype(dtype.newbyteorder("="))
