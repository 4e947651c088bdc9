"""What each number means, said once; printed with every analysis and in every JSON object."""

MACS = (
    "multiply-accumulates of convolution, linear and matrix-multiply layers, bias excluded "
    "(the papers' 'multiply-adds'; fvcore's and torchvision's count)"
)
FLOPS = "2 x MACs (torch.utils.flop_counter's count); element-wise work is not included"
ELEMENTWISE = (
    "element-wise operations reported apart from MACs: bias adds, BatchNorm (2 per element), "
    "activations (1 per element), pooling (max: K*K - 1 comparisons, average: K*K adds and "
    "divisions per output), add and multiply (1 per output element); views and concatenations 0"
)
PARAMS = "every parameter tensor (sum of numel); trainable = requires_grad; buffers excluded"
ACTIVATIONS = (
    "bytes of every tensor the forward pass creates (outputs of layers and operations) for the "
    "dtype; views and in-place results create none; the input is not included"
)
NOT_COUNTED = "layers and operations with no formula are listed as not counted, never as 0"


def as_dict(dtype: str, itemsize: int) -> dict[str, str]:
    return {
        "macs": MACS,
        "flops": FLOPS,
        "elementwise": ELEMENTWISE,
        "params": PARAMS,
        "activation_bytes": ACTIVATIONS + f" ({dtype}: {itemsize} bytes per element)",
        "not_counted": NOT_COUNTED,
    }
