"""Wire format of the inference server: msgpack frames with numpy arrays as ``{dtype, shape, bytes}``.

The same layout as openpi's websocket policy server, minus anything that could run code on load: only
a whitelist of plain numeric dtypes is accepted, msgpack extension types are refused (the timestamp,
ext -1, too), nesting deeper than ``MAX_DEPTH`` is refused before anything recurses into it, and the
byte count must match ``shape`` exactly. Nothing here (or anywhere in the server) uses pickle.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

# Plain little-endian numeric dtypes only: never "O" (object), which is what would need pickle.
ALLOWED_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "bool")
ARRAY_KEYS = frozenset({"dtype", "shape", "bytes"})
MAX_NDIM = 4
MAX_DEPTH = 32  # a control frame nests 5 deep; a deeper one is an attack on the recursion limit
PLAIN_TYPES = (dict, list, str, bytes, int, float, bool, type(None))


class WireError(ValueError):
    """A frame or an encoded array that cannot be decoded; the message names the value."""


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """``{dtype, shape, bytes}`` for a numeric array (C order, little endian)."""
    array = np.asarray(array)
    if array.dtype.name not in ALLOWED_DTYPES:
        raise WireError(f"array dtype must be one of {ALLOWED_DTYPES}, got {array.dtype}")
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": array.dtype.name, "shape": list(array.shape), "bytes": array.tobytes()}


def decode_array(obj: Any, name: str = "array") -> np.ndarray:
    """The array an ``{dtype, shape, bytes}`` dict stands for; WireError naming ``name`` when malformed."""
    if not isinstance(obj, dict) or set(obj) != ARRAY_KEYS:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise WireError(f"{name} must be an array {{dtype, shape, bytes}}, got {keys}")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["bytes"]
    if dtype not in ALLOWED_DTYPES:
        raise WireError(f"{name}.dtype must be one of {ALLOWED_DTYPES}, got {dtype!r}")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_NDIM
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise WireError(f"{name}.shape must be a list of at most {MAX_NDIM} non-negative ints, got {shape!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"{name}.bytes must be bytes, got {type(data).__name__}")
    itemsize = np.dtype(dtype).itemsize
    expected = math.prod(shape) * itemsize
    if len(data) != expected:
        raise WireError(f"{name} has {len(data)} bytes, expected {expected} for shape {tuple(shape)} {dtype}")
    # frombuffer shares the (immutable) frame memory; copy so the policy may write into it.
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(dtype)


def to_wire(obj: Any) -> Any:
    """Replace every numpy array (and numpy scalar) inside dicts/lists by its wire form."""
    if isinstance(obj, np.ndarray):
        return encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj]
    return obj


def from_wire(obj: Any, name: str = "message") -> Any:
    """Inverse of :func:`to_wire`: ``{dtype, shape, bytes}`` dicts become arrays."""
    if isinstance(obj, dict):
        if set(obj) == ARRAY_KEYS:
            return decode_array(obj, name)
        return {k: from_wire(v, f"{name}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_wire(v, f"{name}[{i}]") for i, v in enumerate(obj)]
    return obj


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension types are not accepted (got ext type {code})")


def check_plain(obj: Any, name: str = "frame", max_depth: int = MAX_DEPTH) -> None:
    """WireError unless ``obj`` is plain msgpack data (maps, arrays, str, bin, numbers, nil) at most
    ``max_depth`` deep. Iterative, so no input can exhaust the interpreter's recursion limit."""
    # Entries are (container, parent entry, key, depth); the path is only spelled out for an error.
    stack: list[tuple] = [([obj], None, None, 0)]
    while stack:
        entry = stack.pop()
        container, _, _, depth = entry
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in items:
            if isinstance(value, dict | list):
                if depth + 1 > max_depth:
                    raise WireError(f"{_path(entry, key, name)} nests deeper than {max_depth} levels")
                stack.append((value, entry, key, depth + 1))
            elif not isinstance(value, PLAIN_TYPES):
                what = (
                    "ext type -1 (timestamp)"
                    if isinstance(value, msgpack.Timestamp)
                    else type(value).__name__
                )
                raise WireError(
                    f"{_path(entry, key, name)}: msgpack extension types are not accepted, got {what}"
                )


def _path(entry: tuple, key: Any, name: str) -> str:
    parts = []
    while entry[1] is not None:
        parts.append(key)
        entry, key = entry[1], entry[2]
    text = name + "".join(f".{k}" if isinstance(k, str) else f"[{k}]" for k in reversed(parts))
    return text if len(text) <= 120 else text[:60] + "..." + text[-40:]


def packb(obj: Any) -> bytes:
    """One msgpack frame; arrays encoded with :func:`to_wire`."""
    return msgpack.packb(to_wire(obj), use_bin_type=True)


def unpackb(frame: bytes, max_bytes: int | None = None) -> Any:
    """Decode one msgpack frame into Python objects and numpy arrays; WireError on anything malformed."""
    if not isinstance(frame, bytes | bytearray):
        raise WireError(f"a frame must be binary msgpack, got {type(frame).__name__}")
    if max_bytes is not None and len(frame) > max_bytes:
        raise WireError(f"frame of {len(frame)} bytes is larger than the limit of {max_bytes} bytes")
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
    except WireError:
        raise
    except (msgpack.StackError, RecursionError):
        raise WireError(f"frame nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise WireError(f"frame is not valid msgpack ({type(e).__name__}: {str(e)[:200]})") from None
    check_plain(obj)
    return from_wire(obj)
