"""Pictures where people would rather look than read (matplotlib, the optional extra archcalc[plot])."""

from __future__ import annotations

from pathlib import Path

from archcalc.errors import InputError

_FORMATS = (".png", ".svg", ".pdf")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("plotting needs matplotlib: pip install 'archcalc[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_target(path: str, force: bool = False) -> Path:
    """The picture's file, checked before any work: its suffix, its folder, and (without force) that it
    is not there already, as --output is."""
    target, path = Path(path), str(path)
    if target.suffix.lower() not in _FORMATS:
        raise InputError(f"--plot {path!r}: use a .png, .svg or .pdf file name")
    try:
        if target.is_dir():
            raise InputError(f"--plot {path!r} is a folder; give a file name inside it, e.g. {target / 'plot.png'}")
        if not target.parent.is_dir():
            raise InputError(f"--plot {path!r}: folder {str(target.parent)!r} does not exist")
        if target.exists() and not force:
            raise InputError(f"--plot {path!r} exists; add --force to replace it")
    except OSError as error:  # (a name the file system refuses: too long, say)
        raise InputError(f"cannot write --plot {path!r}: {error.strerror or error}") from None
    return target


def _target(path: str) -> Path:
    return check_target(path, force=True)


def _save(fig, target: Path) -> None:
    # No dates or software versions in the file, so the same data gives the same picture.
    metadata = {"Date": None} if target.suffix.lower() in (".svg", ".pdf") else {"Software": None}
    try:
        fig.savefig(target, bbox_inches="tight", metadata=metadata)
    except OSError as error:
        raise InputError(f"cannot write --plot {str(target)!r}: {error.strerror or error}") from None


def plot_comparison(models: list[str], params: list[int], macs: list[int], activation_bytes: list[int],
                    path: str) -> Path:
    """MACs against parameters, one bubble per model, its area proportional to activation memory."""
    target = _target(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    largest = max(activation_bytes) or 1
    sizes = [40 + 1500 * b / largest for b in activation_bytes]
    ax.scatter([m / 1e6 for m in macs], [p / 1e6 for p in params], s=sizes, alpha=0.5)
    for name, x, y in zip(models, macs, params):
        ax.annotate(name, (x / 1e6, y / 1e6), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("MACs (millions; multiply-accumulates of conv/linear/matmul)")
    ax.set_ylabel("parameters (millions)")
    ax.set_title("MACs against parameters (bubble area: activation memory)")
    ax.grid(True, alpha=0.3)
    _save(fig, target)
    plt.close(fig)
    return target


def plot_layers(model: str, names: list[str], macs: list[int], path: str, per: str = "layer") -> Path:
    """Per-layer MACs as horizontal bars, in execution order (``per="type"``: each type's, the largest first)."""
    target = _target(path)
    plt = _pyplot()
    height = max(3.0, 0.22 * len(names) + 1)
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(range(len(names)), [m / 1e6 for m in macs])
    ax.set_yticks(range(len(names)), labels=names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MACs (millions)")
    ax.set_title(f"{model}: MACs per {per}")
    ax.grid(True, axis="x", alpha=0.3)
    _save(fig, target)
    plt.close(fig)
    return target


def plot_roofline(model: str, points, peak_flops: float, peak_bytes: float, path: str) -> Path:
    """The roofline (log-log) with each layer as a point at its intensity: achieved GFLOP/s when
    measured, else its attainable performance on the roof."""
    target = _target(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    intensities = [p.intensity for p in points if p.intensity > 0]
    low, high = min(intensities + [0.1]) / 2, max(intensities + [peak_flops / peak_bytes]) * 2
    xs = [low * (high / low) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(peak_flops, x * peak_bytes) / 1e9 for x in xs], color="black", label="roof")
    ys = [(p.achieved if p.achieved else p.attainable(peak_flops, peak_bytes)) / 1e9 for p in points]
    ax.scatter([p.intensity for p in points], ys, s=14, alpha=0.7,
               label="measured" if any(p.achieved for p in points) else "attainable")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"{model}: roofline (ridge {peak_flops / peak_bytes:.1f} FLOP/byte)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, target)
    plt.close(fig)
    return target
