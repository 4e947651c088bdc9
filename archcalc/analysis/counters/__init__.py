"""The layer-formula registry's entries, one file per family of operations.

  convolution    Conv, ConvTranspose (module and F.conv*), unfold / fold (the convolution's im2col),
                 torchvision's deformable convolution
  linear         nn.Linear and F.linear, matmul / @ / mm / bmm / baddbmm / addmm / mv, einsum, tensordot,
                 multi_dot, nn.Bilinear, triangular solves
  decompositions LU, Cholesky and QR (torch.linalg) and the solves, inverses and determinants made from
                 them, by LAPACK Working Note 41's counts; the iterative ones (svd, eig) not counted, with why
  attention      F.scaled_dot_product_attention, nn.MultiheadAttention (every path), its functional forms
  recurrent      nn.RNN / LSTM / GRU and their cells, torch's functional rnn ops
  normalisation  BatchNorm, LayerNorm, GroupNorm, RMSNorm, InstanceNorm, LocalResponseNorm, F.normalize
  pooling        max, average and adaptive pooling
  elementwise    activations, arithmetic, softmax, reductions, interpolation, cumsum, addcmul
  losses         the loss functions a forward may compute (MSE, cross-entropy, ...)
  spectral       Fourier transforms (torch.fft, torch.stft)
  detection      torchvision.ops: RoIAlign, RoIPool (and their position-sensitive forms), non-maximum
                 suppression
  movement       data movement and bookkeeping (views, copies, concatenation, masks, comparisons,
                 casts, embedding lookups): 0 operations by a declared rule
  quantized      torch.ao.quantization's int8 layers (dynamic, static, fused) and the quantized namespace's
                 operations: the float formulas over the unpacked weights, and quantization's own steps
  lecture        the lectures' own layers (LeNet-5's subsampling, connection table, RBF output)

Each file registers its module entries in counting.MODULES and its functional entries in
counting.OPS; a module entry and its functional twin are thin adapters over one formula written
in the paper's symbols. Importing this package registers them all.
"""

from archcalc.analysis.counters import (  # noqa: F401  (each registers its formulas)
    attention,
    convolution,
    decompositions,
    detection,
    elementwise,
    lecture,
    linear,
    losses,
    movement,
    normalisation,
    pooling,
    quantized,
    recurrent,
    spectral,
)
