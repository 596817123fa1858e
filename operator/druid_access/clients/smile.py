"""A decoder of Jackson Smile (binary JSON), for the Coordinator's bulk cache-sync reads.

The ``cachedSerialized*`` endpoints are the only way to read every user, role and group
mapping of a cluster in a few requests; they answer Smile, written by Druid's smile mapper
with shared property names and raw binary. No maintained Python decoder exists (the PyPI
packages are unmaintained), and the subset Druid writes is small: this reads any Smile
document (shared names and values, raw and 7-bit binary, every number type) and raises
``ValueError`` on a malformed one. ``tests/contract`` decodes bytes from the real Coordinator.
"""

from __future__ import annotations

import struct
from decimal import Decimal

SMILE_TYPE = "application/x-jackson-smile"

_SMILE_MAX_SHARED = 1024
_SIMPLE: tuple[object, ...] = ("", None, False, True)  # tokens 0x20 to 0x23


def smile_decode(data: bytes) -> object:
    """Decode a Smile document (shared names and values, raw and 7-bit binary, all number types)."""
    if data[:3] != b":)\n":
        raise ValueError("not a Smile document (no header)")
    decoder = _SmileDecoder(data, data[3])
    try:
        value = decoder.value()
    except (IndexError, UnicodeDecodeError, struct.error):
        raise ValueError(f"truncated or malformed Smile document near byte {decoder.pos}") from None
    if decoder.pos > len(data):  # a text or binary value cut short: slicing does not notice
        raise ValueError(f"truncated or malformed Smile document near byte {len(data)}")
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
        end = self.data.find(0xFC, self.pos)
        if end < 0:
            raise ValueError(f"truncated or malformed Smile document: unterminated text at {self.pos}")
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

    def shared(self, table: list[str] | None, index: int) -> str:
        if table is None or index >= len(table):
            raise ValueError(f"a back-reference to an unknown shared string at {self.pos - 1}")
        return table[index]

    def remember(self, table: list[str] | None, text: str) -> str:
        if table is not None and len(text.encode("utf-8")) <= 64:
            if len(table) >= _SMILE_MAX_SHARED:
                table.clear()
            table.append(text)
        return text

    def value(self) -> object:
        data = self.data
        self.pos += 1
        token = data[self.pos - 1]
        # The tokens of Druid's maps first: objects, short strings, raw binary, small ints.
        if token == 0xFA:
            obj: dict[str, object] = {}
            while data[self.pos] != 0xFB:
                key = self.key()
                obj[key] = self.value()
            self.pos += 1
            return obj
        if 0x40 <= token <= 0xBF:  # tiny/short ASCII (0x40, 0x60) and Unicode (0x80, 0xA0) text
            size = (token & 0x1F) + (1 if token < 0x60 else 33 if token < 0x80 else 2 if token < 0xA0 else 34)
            return self.remember(self.values, self.text(size))
        if token == 0xFD:
            size = self.vint()
            self.pos += size
            return data[self.pos - size : self.pos]
        if 0xC0 <= token <= 0xDF:
            raw = token - 0xC0
            return (raw >> 1) ^ -(raw & 1)
        if token == 0xF8:
            items: list[object] = []
            while data[self.pos] != 0xF9:
                items.append(self.value())
            self.pos += 1
            return items
        if 0x01 <= token <= 0x1F:
            return self.shared(self.values, token - 1)
        if 0x20 <= token <= 0x23:
            return _SIMPLE[token - 0x20]
        if token in (0x24, 0x25):
            raw = self.vint()
            return (raw >> 1) ^ -(raw & 1)
        if token == 0x26:
            return int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
        if token in (0x28, 0x29):
            count, fmt = (5, ">f") if token == 0x28 else (10, ">d")
            bits = 0
            for b in data[self.pos : self.pos + count]:
                bits = (bits << 7) | b
            self.pos += count
            return struct.unpack(fmt, bits.to_bytes(4 if token == 0x28 else 8, "big"))[0]
        if token == 0x2A:
            raw = self.vint()
            scale = (raw >> 1) ^ -(raw & 1)
            unscaled = int.from_bytes(self.seven_bit(self.vint()), "big", signed=True)
            return Decimal(unscaled).scaleb(-scale)
        if token in (0xE0, 0xE4):
            return self.until_end_marker()
        if token == 0xE8:
            return self.seven_bit(self.vint())
        if 0xEC <= token <= 0xEF:
            return self.shared(self.values, ((token & 0x03) << 8) | self.byte())
        raise ValueError(f"unexpected Smile value token 0x{token:02x} at {self.pos - 1}")

    def key(self) -> str:
        token = self.byte()
        if token == 0x20:
            return ""
        if 0x30 <= token <= 0x33:
            return self.shared(self.names, ((token & 0x03) << 8) | self.byte())
        if token == 0x34:
            return self.until_end_marker()
        if 0x40 <= token <= 0x7F:
            return self.shared(self.names, token - 0x40)
        if 0x80 <= token <= 0xBF:
            return self.remember(self.names, self.text(token - 0x80 + 1))
        if 0xC0 <= token <= 0xF7:
            return self.remember(self.names, self.text(token - 0xC0 + 2))
        raise ValueError(f"unexpected Smile key token 0x{token:02x} at {self.pos - 1}")
