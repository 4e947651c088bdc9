"""A small decoder-only language model (GPT-style), as a course's transformer lab writes it: token and
position embeddings, pre-norm causal self-attention blocks, the output head tied to the token embedding.

    archcalc memory examples/tiny_gpt.py:TinyGPT --input 128 --input-dtype int64:1000 --batch 32 --optimizer adam
    archcalc time examples/tiny_gpt.py:TinyGPT --input 128 --input-dtype int64:1000 --batch 32 --training
"""

import torch
from torch import nn


class TinyGPT(nn.Module):
    def __init__(self, vocabulary: int = 1000, width: int = 128, heads: int = 4, layers: int = 4, context: int = 128):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocabulary, width), nn.Embedding(context, width)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocabulary, bias=False)
        self.head.weight = self.tokens.weight  # tied: counted once

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).triu(1)  # True: a later token, not attended
        return self.head(self.norm(self.blocks(x, mask=causal, is_causal=True)))
