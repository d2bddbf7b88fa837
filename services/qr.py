"""The eSIM activation code (GSMA SGP.22 LPA string) and its QR code as a crisp PNG."""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections.abc import Iterable
from typing import Any

import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

# Error correction M survives ~15 % damage (glare on a phone screen photographed by another).
ERROR_CORRECTION = ERROR_CORRECT_M
QUIET_ZONE_MODULES = 4
TARGET_PIXELS = 720
MIN_BOX_SIZE = 4

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def smdp_host(smdp_address: str) -> str:
    """The SM-DP+ address as the LPA wants it: no scheme, no trailing slash, case kept."""
    host = _SCHEME.sub("", smdp_address.strip()).rstrip("/").strip()
    if not host:
        raise ValueError("empty SM-DP+ address")
    return host


def lpa_string(smdp_address: str, matching_id: str) -> str:
    """`LPA:1$<SM-DP+ host>$<matching id>` — what the QR encodes and phones accept typed in."""
    host = smdp_host(smdp_address)
    code = matching_id.strip()
    if not code:
        raise ValueError("empty matching id")
    if "$" in host or "$" in code:
        # `$` separates the LPA fields; one inside a field would corrupt the code silently.
        raise ValueError("'$' inside an LPA field")
    return f"LPA:1${host}${code}"


def parse_lpa(lpa: str) -> tuple[str, str]:
    """(SM-DP+ host, matching id) of an `LPA:1$<host>$<matching id>` string; "" where missing."""
    _format, host, matching_id = [*lpa.split("$", 2), "", ""][:3]
    return host, matching_id


def render_qr_png(lpa: str) -> bytes:
    """A black-on-white 1-bit PNG of ~600–800 px with a 4-module quiet zone."""
    if not lpa:
        raise ValueError("empty LPA string")
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE_MODULES)
    code.add_data(lpa)
    code.best_fit()
    code.makeImpl(False, _best_mask(code))
    modules = code.modules_count + 2 * QUIET_ZONE_MODULES
    box = max(MIN_BOX_SIZE, round(TARGET_PIXELS / modules))
    # One byte per module (dark 0, light 255), scaled up without smoothing: the same pixels as
    # qrcode's PIL image factory draws one rectangle per dark module, without those calls.
    light = b"\xff" * QUIET_ZONE_MODULES
    edge = b"\xff" * (modules * QUIET_ZONE_MODULES)
    body = b"".join(
        light + bytes(0 if dark else 255 for dark in row) + light for row in code.modules
    )
    image = Image.frombytes("L", (modules, modules), edge + body + edge).convert(
        "1", dither=Image.Dither.NONE
    )
    image = image.resize((modules * box, modules * box), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    # zlib's default effort: `optimize` took twice as long (~2 ms) to save 7 % of ~1.2 kB.
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# The mask choice below scores the eight patterns exactly as qrcode's own best_mask_pattern does
# (ISO/IEC 18004 penalty rules on the symbol with blank format information), but on rows and
# columns held as integers and strings: qrcode re-maps every data bit and walks every module in
# Python for each pattern, which was two thirds of a render.
_RUN = re.compile(r"0{5,}|1{5,}")
_FINDER_LIKE = re.compile(r"(?=10111010000|00001011101)")  # each the other reversed


def _best_mask(code: qrcode.QRCode[Any]) -> int:
    """The mask pattern qrcode would pick for `code` (version already fitted)."""
    code.makeImpl(True, 0)
    n = code.modules_count
    rows = [_bits(row) for row in code.modules]
    cols = [_bits(col) for col in zip(*code.modules, strict=True)]
    flip_rows, flip_cols = _mask_flips(code.version)
    best, best_penalty = 0, -1
    for pattern in range(8):
        masked_rows = [row ^ flip for row, flip in zip(rows, flip_rows[pattern], strict=True)]
        masked_cols = [col ^ flip for col, flip in zip(cols, flip_cols[pattern], strict=True)]
        penalty = _penalty(masked_rows, masked_cols, n)
        if best_penalty < 0 or penalty < best_penalty:
            best, best_penalty = pattern, penalty
    return best


def _bits(modules: Iterable[bool | None]) -> int:
    """Bit i set where module i is dark."""
    return sum(1 << i for i, dark in enumerate(modules) if dark)


def _penalty(rows: list[int], cols: list[int], n: int) -> int:
    form = f"0{n}b"
    lines = " ".join([format(row, form) for row in rows] + [format(col, form) for col in cols])
    runs = sum(len(run) - 2 for run in _RUN.findall(lines))
    finder_like = len(_FINDER_LIKE.findall(lines))
    # A uniform 2×2 block at column j: both rows agree at j and j+1, and the top row at j, j+1.
    inner = (1 << (n - 1)) - 1
    blocks = 0
    for top, bottom in itertools.pairwise(rows):
        same = ~(top ^ bottom)
        blocks += (same & (same >> 1) & ~(top ^ (top >> 1)) & inner).bit_count()
    dark = sum(row.bit_count() for row in rows)
    balance = int(abs(float(dark) / (n**2) * 100 - 50) / 5)
    return runs + 3 * blocks + 40 * finder_like + 10 * balance


@functools.cache
def _mask_flips(version: int) -> tuple[list[list[int]], list[list[int]]]:
    """Per pattern, per row and per column: the modules where qrcode's test symbol with that
    pattern differs from the one with pattern 0 (only data modules change with the mask)."""
    probe = qrcode.QRCode(version=version, error_correction=ERROR_CORRECTION)
    probe.add_data("")
    rows: list[list[int]] = []
    cols: list[list[int]] = []
    for pattern in range(8):
        probe.makeImpl(True, pattern)
        rows.append([_bits(row) for row in probe.modules])
        cols.append([_bits(col) for col in zip(*probe.modules, strict=True)])
    flip_rows = [[a ^ b for a, b in zip(each, rows[0], strict=True)] for each in rows]
    flip_cols = [[a ^ b for a, b in zip(each, cols[0], strict=True)] for each in cols]
    return flip_rows, flip_cols
