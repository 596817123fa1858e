"""Jackson Smile as Druid 27's smile mapper writes it (the decoder is the product's).

The ``cachedSerialized*`` endpoints answer Smile with shared property names and raw binary, as Druid
writes them (``smile_encode``); ``druid_access.clients.smile.smile_decode`` reads any Smile document.
"""

from __future__ import annotations

from druid_access.clients.smile import _SMILE_MAX_SHARED, SMILE_TYPE, smile_decode

__all__ = ["SMILE_TYPE", "smile_decode", "smile_encode"]


def smile_encode(value: object) -> bytes:
    """Jackson Smile as Druid's smile mapper writes it: header ``:)\\n\\x05`` (shared property names,
    raw binary), repeated short names as back-references, ``bytes`` as raw binary (0xFD)."""
    out = bytearray(b":)\n\x05")
    _smile_value(out, value, {})
    return bytes(out)


def _smile_vint(value: int) -> bytes:
    # Big-endian 7-bit groups; the last byte holds 6 bits and has the high bit set.
    tail = 0x80 | (value & 0x3F)
    value >>= 6
    head: list[int] = []
    while value:
        head.append(value & 0x7F)
        value >>= 7
    return bytes([*reversed(head), tail])


def _smile_value(out: bytearray, value: object, names: dict[str, int]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: 0x21, False: 0x22, True: 0x23}[value])
    elif isinstance(value, int):
        _smile_int(out, value)
    elif isinstance(value, str):
        _smile_string(out, value)
    elif isinstance(value, bytes):
        out.append(0xFD)
        out += _smile_vint(len(value)) + value
    elif isinstance(value, list | tuple):
        out.append(0xF8)
        for item in value:
            _smile_value(out, item, names)
        out.append(0xF9)
    elif isinstance(value, dict):
        out.append(0xFA)
        for key, item in value.items():
            _smile_key(out, str(key), names)
            _smile_value(out, item, names)
        out.append(0xFB)
    else:
        raise TypeError(f"cannot Smile-encode {type(value).__name__}")


def _smile_int(out: bytearray, value: int) -> None:
    if -16 <= value <= 15:
        out.append(0xC0 + ((value << 1) ^ (value >> 31)))
    elif -(2**31) <= value < 2**31:
        out.append(0x24)
        out += _smile_vint((value << 1) ^ (value >> 31))
    else:
        out.append(0x25)
        out += _smile_vint((value << 1) ^ (value >> 63))


def _smile_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(value)
    if size == 0:
        out.append(0x20)
    elif ascii_only and size <= 64:
        out.append((0x40 + size - 1) if size <= 32 else (0x60 + size - 33))
        out += data
    elif not ascii_only and size <= 65:
        out.append((0x80 + size - 2) if size <= 33 else (0xA0 + size - 34))
        out += data
    else:
        out.append(0xE0 if ascii_only else 0xE4)
        out += data + b"\xfc"


def _smile_key(out: bytearray, key: str, names: dict[str, int]) -> None:
    if key == "":
        out.append(0x20)
        return
    index = names.get(key)
    if index is not None:
        out += bytes([0x40 + index]) if index < 64 else bytes([0x30 + (index >> 8), index & 0xFF])
        return
    data = key.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(key)
    if ascii_only and size <= 64:
        out.append(0x80 + size - 1)
        out += data
    elif not ascii_only and size <= 57:
        out.append(0xC0 + size - 2)
        out += data
    else:
        out.append(0x34)
        out += data + b"\xfc"
        return  # long names are not shared
    if len(names) >= _SMILE_MAX_SHARED:
        names.clear()
    names[key] = len(names)
