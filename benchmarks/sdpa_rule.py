"""The attention kernel the CUDA simulation assumes (training/fused.py's cuda_kernel, sdp_utils.cpp's rule read
without a GPU) against PyTorch's own choice on this GPU (torch._fused_sdp_choice), over dtypes, head sizes,
masks and strides:

    python benchmarks/sdpa_rule.py        # needs a GPU; prints each case and the count that disagree

cuDNN's attention, which recent PyTorch prefers on sm90 and sm100, is reported apart: it saves what flash
attention saves, so a case where the rule says flash and the GPU cuDNN agrees in memory.
"""

from __future__ import annotations

import itertools

import torch

from archcalc.training.fused import cuda_kernel

NAMES = {0: None, 1: "flash", 2: "efficient", 3: "cudnn"}


def _inputs(dtype, d: int, layout: str, mask: str):
    if layout == "contiguous":
        q = torch.randn(2, 4, 128, d, device="cuda", dtype=dtype)
    else:  # Q, K and V cut by a permute from one projection: stride 128 along the head dimension
        q = torch.randn(2, 4, d, 128, device="cuda", dtype=dtype).transpose(-1, -2)
    m = {"none": None, "float": torch.zeros(2, 4, 128, 128, device="cuda", dtype=dtype),
         "transposed": torch.zeros(2, 4, 128, 128, device="cuda", dtype=dtype).transpose(-1, -2)}[mask]
    return q, q, q, m


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("sdpa_rule.py compares with a GPU's choice: this machine has none")
    print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name())
    disagree = cudnn = 0
    for dtype, d, layout, mask in itertools.product((torch.float16, torch.bfloat16, torch.float32),
                                                    (16, 60, 62, 64, 128, 256, 288),
                                                    ("contiguous", "permuted"), ("none", "float", "transposed")):
        q, k, v, m = _inputs(dtype, d, layout, mask)
        ours = cuda_kernel(q, k, v, m)
        theirs = NAMES.get(torch._fused_sdp_choice(q, k, v, m, 0.0, False), "other")
        agree = ours == theirs or (theirs == "cudnn" and ours == "flash")
        disagree += not agree
        cudnn += theirs == "cudnn"
        print(f"{str(dtype)[6:]:9s} d={d:<4d} {layout:10s} mask={mask:10s} rule={ours!s:9s} gpu={theirs!s:9s}"
              f"{'' if agree else '  <<< differs'}")
    print(f"{disagree} cases differ; cuDNN chosen in {cudnn}")


if __name__ == "__main__":
    main()
