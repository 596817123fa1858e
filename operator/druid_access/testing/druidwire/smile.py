"""Jackson Smile, as Druid 27's smile mapper writes it and as the fake's tests read it.

The ``cachedSerialized*`` endpoints answer Smile with shared property names and raw binary, as Druid
writes them (``smile_encode``); ``smile_decode`` reads any Smile document.
"""

from __future__ import annotations

import struct
from decimal import Decimal

SMILE_TYPE = "application/x-jackson-smile"

_SMILE_MAX_SHARED = 1024


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


def smile_decode(data: bytes) -> object:
    """Decode a Smile document (shared names and values, raw and 7-bit binary, all number types)."""
    if data[:3] != b":)\n":
        raise ValueError("not a Smile document (no header)")
    decoder = _SmileDecoder(data, data[3])
    value = decoder.value()
    if decoder.pos < len(data) and data[decoder.pos] != 0xFF:
        raise ValueError(f"trailing bytes after the Smile value at {decoder.pos}")
    return value


class _SmileDecoder:
    def __init__(self, data: bytes, flags: int) -> None:
        self.data, self.pos = data, 4
        self.names: list[str] | None = [] if flags & 0x01 else None
        self.values: list[str] | None = [] if flags & 0x02 else None

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def vint(self) -> int:
        value = 0
        while True:
            b = self.byte()
            if b & 0x80:
                return (value << 6) | (b & 0x3F)
            value = (value << 7) | b

    def text(self, size: int) -> str:
        self.pos += size
        return self.data[self.pos - size : self.pos].decode("utf-8")

    def until_end_marker(self) -> str:
        end = self.data.index(0xFC, self.pos)
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def seven_bit(self, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            k = min(7, size)
            groups = self.data[self.pos : self.pos + k + 1]
            bits = 0
            for group in groups[:k]:
                bits = (bits << 7) | group
            bits = (bits << k) | groups[k]
            out += bits.to_bytes(k, "big")
            self.pos, size = self.pos + k + 1, size - k
        return bytes(out)

    def remember(self, table: list[str] | None, text: str) -> str:
        if table is not None and len(text.encode("utf-8")) <= 64:
            if len(table) >= _SMILE_MAX_SHARED:
                table.clear()
            table.append(text)
        return text

    def value(self) -> object:
        token = self.byte()
        if 0x01 <= token <= 0x1F:
            assert self.values is not None
            return self.values[token - 1]
        simple: dict[int, object] = {0x20: "", 0x21: None, 0x22: False, 0x23: True}
        if token in simple:
            return simple[token]
        if token in (0x24, 0x25):
            raw = self.vint()
            return (raw >> 1) ^ -(raw & 1)
        if token == 0x26:
            return int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
        if token in (0x28, 0x29):
            count, fmt = (5, ">f") if token == 0x28 else (10, ">d")
            bits = 0
            for b in self.data[self.pos : self.pos + count]:
                bits = (bits << 7) | b
            self.pos += count
            return struct.unpack(fmt, bits.to_bytes(4 if token == 0x28 else 8, "big"))[0]
        if token == 0x2A:
            raw = self.vint()
            scale = (raw >> 1) ^ -(raw & 1)
            unscaled = int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
            return Decimal(unscaled).scaleb(-scale)
        for low, high, offset in ((0x40, 0x5F, 1), (0x60, 0x7F, 33), (0x80, 0x9F, 2), (0xA0, 0xBF, 34)):
            if low <= token <= high:
                return self.remember(self.values, self.text(token - low + offset))
        if 0xC0 <= token <= 0xDF:
            raw = token - 0xC0
            return (raw >> 1) ^ -(raw & 1)
        if token in (0xE0, 0xE4):
            return self.until_end_marker()
        if token == 0xE8:
            return self.seven_bit(self.vint())
        if 0xEC <= token <= 0xEF:
            assert self.values is not None
            return self.values[((token & 0x03) << 8) | self.byte()]
        if token == 0xFD:
            size = self.vint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if token == 0xF8:
            items: list[object] = []
            while self.data[self.pos] != 0xF9:
                items.append(self.value())
            self.pos += 1
            return items
        if token == 0xFA:
            obj: dict[str, object] = {}
            while self.data[self.pos] != 0xFB:
                key = self.key()
                obj[key] = self.value()
            self.pos += 1
            return obj
        raise ValueError(f"unexpected Smile value token 0x{token:02x} at {self.pos - 1}")

    def key(self) -> str:
        token = self.byte()
        if token == 0x20:
            return ""
        if 0x30 <= token <= 0x33:
            assert self.names is not None
            return self.names[((token & 0x03) << 8) | self.byte()]
        if token == 0x34:
            return self.until_end_marker()
        if 0x40 <= token <= 0x7F:
            assert self.names is not None
            return self.names[token - 0x40]
        if 0x80 <= token <= 0xBF:
            return self.remember(self.names, self.text(token - 0x80 + 1))
        if 0xC0 <= token <= 0xF7:
            return self.remember(self.names, self.text(token - 0xC0 + 2))
        raise ValueError(f"unexpected Smile key token 0x{token:02x} at {self.pos - 1}")
