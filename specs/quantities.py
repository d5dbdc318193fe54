"""Kubernetes resource quantities (`500m`, `1.5Gi`, `2G`, `1e3`): the one parser mlc has.

The spec validates `resources.cpu` and `resources.memory` with it, and the cost model, the
passes and every target (kfp, kserve, k8s, terraform) read quantities through it, so a value
means the same everywhere. The grammar is Kubernetes' own (`k8s.io/apimachinery`
`resource.Quantity`):

    quantity ::= number [suffix]
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei          (binary, 2^10 … 2^60)
               | n | u | m | k | M | G | T | P | E    (decimal, 10^-9 … 10^18)
               | (e | E) [+ | -] digits             (decimal exponent)

A sign is part of Kubernetes' grammar, but no resource can be negative, so mlc takes none.
Kilo is a lower-case `k` (`K` alone is not a Kubernetes suffix), and memory in milli-, micro-
or nano-bytes is refused: `500m` of memory is half a byte, never what was meant.

>>> quantity("1.5Gi"), quantity("250m"), quantity("1e3")
(Decimal('1610612736.0'), Decimal('0.250'), Decimal('1E+3'))
>>> cpu_cores("250m"), memory_gib("512Mi"), memory_bytes("2G")
(0.25, 0.5, 2000000000)
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

PATTERN = r"^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
"""Regular expression of a non-negative Kubernetes quantity (used in the JSON Schema too)."""

_QUANTITY = re.compile(PATTERN)

BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_SUB_UNIT = ("n", "u", "m")


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity; the message says what would be valid."""


def _text(value: object) -> str:
    # YAML gives `cpu: 2` and `cpu: 0.5` as numbers; Kubernetes writes them the same way.
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a quantity")
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise QuantityError(f"{value!r} is not a quantity")


def _hint(text: str) -> str:
    if re.match(r"^\d+(\.\d*)?K$", text):
        return f" (kilo is a lower-case 'k': '{text[:-1]}k', or '{text}i' for 1024s)"
    if text.startswith("-"):
        return " (resources cannot be negative)"
    if re.match(r"^\d+(\.\d*)?[KMGTPE]B$", text, re.IGNORECASE):
        number, unit = text[:-2], text[-2].upper()
        decimal = unit.replace("K", "k")
        return f" (write '{number}{unit}i' in binary or '{number}{decimal}' in decimal units)"
    return ""


def quantity(value: object, what: str = "quantity") -> Decimal:
    """The exact value of a Kubernetes quantity (cores for CPU, bytes for memory).

    Raises:
        QuantityError: `value` does not follow the grammar (negative values included); the
            message calls it a `what` ("CPU quantity", "memory quantity").

    >>> quantity("2"), quantity("0.5"), quantity(".5k"), quantity("1E")
    (Decimal('2'), Decimal('0.5'), Decimal('500.0'), Decimal('1000000000000000000'))
    """
    text = _text(value)
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes {what}{_hint(text)}")
    number, suffix = Decimal(match.group(1)), match.group(3) or ""
    if suffix in BINARY_SUFFIXES:
        return number * BINARY_SUFFIXES[suffix]
    if suffix in DECIMAL_SUFFIXES:
        return number * DECIMAL_SUFFIXES[suffix]
    return number.scaleb(int(suffix[1:]))


def check_cpu(value: object) -> str:
    """`value` as the CPU quantity text the spec keeps; raises QuantityError with a hint.

    >>> check_cpu(2), check_cpu("500m")
    ('2', '500m')
    """
    try:
        quantity(value, "CPU quantity")
    except QuantityError as exc:
        raise QuantityError(f"{exc}; write cores (2, 0.5) or millicores ('500m')") from None
    return _text(value)


def check_memory(value: object) -> str:
    """`value` as the memory quantity text the spec keeps; raises QuantityError with a hint.

    >>> check_memory("1.5Gi")
    '1.5Gi'
    """
    text = _text(value)
    try:
        quantity(text, "memory quantity")
    except QuantityError as exc:
        raise QuantityError(f"{exc}; write e.g. '512Mi', '1.5Gi' or '2G'") from None
    match = _QUANTITY.match(text)
    if match is not None and match.group(3) in _SUB_UNIT:
        raise QuantityError(
            f"{text!r} is not a memory quantity a pod can have (a fraction of a byte); "
            f"did you mean '{match.group(1)}Mi'?"
        )
    return text


def cpu_cores(value: object) -> float:
    """CPU quantity in cores.

    Raises:
        QuantityError: not a CPU quantity.

    >>> cpu_cores("500m"), cpu_cores(2), cpu_cores("1e3")
    (0.5, 2.0, 1000.0)
    """
    return float(quantity(value))


def memory_bytes(value: object) -> int:
    """Memory quantity in bytes, rounded up to a whole byte as Kubernetes does.

    Raises:
        QuantityError: not a memory quantity (`check_memory`).

    >>> memory_bytes("1.5Gi"), memory_bytes("500Mi"), memory_bytes("1.3Ki")
    (1610612736, 524288000, 1332)
    """
    return math.ceil(quantity(check_memory(value)))


def memory_gib(value: object) -> float:
    """Memory quantity in GiB (2^30 bytes).

    >>> memory_gib("1.5Gi"), memory_gib("2G")
    (1.5, 1.862645149230957)
    """
    return memory_bytes(value) / 2**30


def memory_gb(value: object) -> float:
    """Memory quantity in GB (10^9 bytes), the unit of kfp's float resource fields.

    >>> memory_gb("1.5Gi"), memory_gb("2G")
    (1.610612736, 2.0)
    """
    return memory_bytes(value) / 10**9
