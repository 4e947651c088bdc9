"""Fourier transforms (torch.fft, torch.stft): FNet's token mixing, Autoformer's auto-correlation, Fourier neural
operators. No multiply-accumulates; element-wise work by the count FFTW's benchmarks use (a radix-2 Cooley-Tukey
transform's exact operations, a convention for other lengths, rounded to a whole number):

  complex transform of N points (fft, ifft, fft2, fftn, ...)      5 N log2 N a transform
  real transform (rfft, irfft, hfft, ihfft and their 2-D, n-D)   2.5 N log2 N (half the complex one)
  N: the signal's points over every transformed dimension (the n or s asked for, else the input's sizes; the
     output's for the real inverses irfft and hfft, whose input is the half spectrum); one transform for each
     position of the other dimensions
  stft    per frame: the window applied (n_fft products) and a real (onesided) or complex transform of n_fft points
  istft   per frame an inverse transform of n_fft points, the window (n_fft products) and the overlap-add (n_fft
          adds); the window's squares overlap-added once into its envelope, its check for a 0 (2 per sample); a
          division per output sample
fftshift, ifftshift, fftfreq, rfftfreq: data movement and constants, 0.
Their gradients: a transform of the same size (counting.ELEMENTWISE_BACKWARD's one per forward operation).
"""

from __future__ import annotations

from math import log2, prod

from archcalc.analysis.counting import OPS, Count, OpCall
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped

_ONE_D = ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft")
_TWO_D = tuple(f"{name}2" for name in _ONE_D)
_N_D = tuple(f"{name}n" for name in _ONE_D)
_OUTPUT_SIZED = {"irfft", "hfft"}  # (their input is a half spectrum: the signal has the output's length)


def transform_count(points: int, transforms: int, real: bool, what: str) -> Count:
    per = (2.5 if real else 5) * points * log2(points) if points > 1 else 0
    n = round(per * transforms)
    rule = "2.5" if real else "5"
    return Count(0, n, {"elementwise": f"{what}: {rule}*{points}*log2({points}) a transform * {transforms} = "
                                       f"{grouped(n)}"})


@OPS.register(*(f"fft_{name}" for name in _ONE_D + _TWO_D + _N_D))
def fft(call: OpCall) -> Count:
    kind = call.name[4:].rstrip("2n")
    shape = call.output if kind in _OUTPUT_SIZED else call.inputs[0]
    dims = _dims(call, len(shape))
    sizes = call.arg(1, "s" if call.name[-1] in "2n" else "n")
    if kind not in _OUTPUT_SIZED and sizes is not None:
        points = prod([sizes] if isinstance(sizes, int) else sizes)
    else:
        points = prod(shape[d] for d in dims)
    transforms = prod(shape) // prod(shape[d] for d in dims) if prod(shape) else 0
    return transform_count(points, transforms, kind not in ("fft", "ifft"), call.name.replace("_", "."))


def _dims(call: OpCall, rank: int) -> list[int]:
    if call.name[-1] == "2":
        dim = call.arg(2, "dim", (-2, -1))
    elif call.name[-1] == "n":
        dim = call.arg(2, "dim")
        if dim is None:
            s = call.arg(1, "s")
            dim = range(-len(s), 0) if s is not None else range(rank)
    else:
        dim = call.arg(2, "dim", -1)
    return sorted({d % rank for d in ([dim] if isinstance(dim, int) else dim)})


@OPS.register("stft")
def stft(call: OpCall) -> Count:
    """torch.stft(x, n_fft, ..., onesided, return_complex=True): frames x (n_fft window products + a transform)."""
    n_fft, out = call.arg(1, "n_fft"), call.output
    frames = out[-1] * prod(out[:-2])
    transform = transform_count(n_fft, frames, call.kwargs.get("onesided", True) is not False, "stft")
    n = transform.elementwise + frames * n_fft
    return Count(0, n, {"elementwise": f"{frames} frames * ({n_fft} window products + "
                                       f"{grouped(transform.elementwise // frames if frames else 0)} transform) = "
                                       f"{grouped(n)} (a transform: {transform.formulas['elementwise']})"})


@OPS.register("istft")
def istft(call: OpCall) -> Count:
    """torch.istft(X, n_fft, hop_length, ..., return_complex) as PyTorch's SpectralOps.cpp runs it (HDemucs, vocoders;
    its aten calls seen in order by a dispatch mode): per frame an inverse transform of n_fft points (_fft_c2r;
    ifft where return_complex), the window applied (n_fft products) and the frames overlap-added (unfold_backward:
    n_fft adds a frame, fold's rule); once for all signals, the window's squares (n_fft) overlap-added into its
    envelope (frames*n_fft), the envelope's check that no sample is 0 (abs and min over its L samples, 2L); every
    output sample divided by the envelope."""
    n_fft, spec, out = call.arg(1, "n_fft"), call.inputs[0], call.output
    frames, signals, samples = spec[-1], prod(spec[:-2]), out[-1]
    real = not call.arg(9, "return_complex", False)
    transform = transform_count(n_fft, signals * frames, real, "istft")
    each = signals * frames * n_fft
    envelope = n_fft + frames * n_fft + 2 * samples
    n = transform.elementwise + 2 * each + envelope + prod(out)
    return Count(0, n, lambda: {"elementwise": (
        f"inverse transforms {grouped(transform.elementwise)} ({transform.formulas['elementwise']}) + window and "
        f"overlap-add 2*{signals}*{frames}*{n_fft} + the window's envelope {n_fft} + {frames}*{n_fft} and its check "
        f"2*{samples} + a division per sample {elements_text(out)} = {grouped(n)}")})


@OPS.register("fft_fftshift", "fft_ifftshift", "fft_fftfreq", "fft_rfftfreq")
def shift(call: OpCall) -> Count:
    return Count(0, 0, {}, "data movement (a roll) or constants: no arithmetic")
