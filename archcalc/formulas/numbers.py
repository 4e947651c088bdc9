"""How numbers are written: thousands separators for exact counts, M/G for the papers' rounding."""


def grouped(n: int) -> str:
    """An exact integer with thousands separators: 112896000 -> '112,896,000'."""
    return f"{n:,}"


def human(n: float) -> str:
    """A count in the papers' style: 112896000 -> '112.9M', 3857973248 -> '3.86G' (as SENet prints)."""
    for unit, scale, digits in (("T", 1e12, 2), ("G", 1e9, 2), ("M", 1e6, 1), ("K", 1e3, 1)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:g}"


def human_bytes(n: int) -> str:
    """Bytes in binary units: 1572864 -> '1.50 MiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def product_text(factors) -> str:
    """Factors joined as the lecture writes them: (5, 5, 480) -> '5*5*480'."""
    return "*".join(str(f) for f in factors)


def shape_text(shape) -> str:
    """A tensor's shape as the tables write it: (1, 3, 32, 32) -> '1x3x32x32'."""
    return "x".join(str(s) for s in shape)


def shapes_text(shapes) -> str:
    """Several shapes, one per input or output: '1x3x32x32, 1x10'."""
    return ", ".join(shape_text(s) for s in shapes)
