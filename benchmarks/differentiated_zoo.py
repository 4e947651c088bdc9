"""Forwards that differentiate, on public networks, against torch.utils.flop_counter's formulas over every aten kernel
that runs (tests/aten_flops.py), in one run (needs torchvision and timm, which the project does not install: run it
beside torch 2.14.1 and torchvision 0.29.1, in an environment of its own, with the project on PYTHONPATH):

    PYTHONPATH=. python benchmarks/differentiated_zoo.py [--size 32] [NAME ...]

For each network (torchvision's or timm's, random weights, eval mode, 10 classes, 2 images of SIZE x SIZE; a timm
ViT built for that size), wrapped five ways: ``saliency``, the input gradient made with create_graph=True
(torch.autograd.grad); ``hvp``, a Hessian-vector product along the input, jvp(grad(f)); ``hvp-params``, one in
parameter space (functional_call); ``jvp``, forward-mode AD along the input; and ``penalty``, a gradient penalty
((‖∂f/∂x‖ - 1)², trained: its training step, forward and backward). archcalc's MACs on the meta device against the
aten count of the same call on the CPU, with attention on PyTorch's math kernel (its fused ones have no forward-mode
AD); a network PyTorch itself cannot run so (hardsigmoid's backward has no forward-mode AD: GhostNet, MobileViT)
is reported as it fails, and one whose count archcalc says it has no formula for as "not counted" (with the note),
apart from a count that differs without one: "DIFFERENT", which makes the run fail.

Hugging Face's networks (``hf-gpt2``, ``hf-llama``, ``hf-bert``, ``hf-t5``, ``hf-bart``, ``hf-whisper``: transformers'
own classes from small configurations, 2 layers of width 32, random weights; needs transformers) are differentiated
along their (decoder's) input embeddings, 2 sequences of 8: ``jvp``, ``jacfwd`` (of the first token's first four
features) and ``hvp``, each with its eager and its SDPA attention, forward and training step; an encoder-decoder's
encoder input is fixed, so its cross-attention's keys and values carry no tangent, and ``both`` takes the jvp along
the two (T5, BART).
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import func, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import archcalc
from tests.aten_flops import AtenMacs, step_macs

NETWORKS = ["resnet18", "resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0", "vgg11_bn", "squeezenet1_0",
            "shufflenet_v2_x0_5", "regnet_x_400mf", "convnext_tiny", "googlenet", "mnasnet0_5", "resnext50_32x4d",
            "vit_tiny_patch16_224", "deit_tiny_patch16_224", "convnext_atto", "resnet10t", "dla34", "cspresnet50",
            "repvgg_a0", "poolformer_s12", "regnetx_002"]
MODES = ["saliency", "hvp", "hvp-params", "jvp", "penalty"]
HF = ["hf-gpt2", "hf-llama", "hf-bert", "hf-t5", "hf-bart", "hf-whisper"]
HF_MODES = ["jvp", "jacfwd", "hvp", "both"]


class Differentiating(nn.Module):
    """A network differentiated in its forward (MODES)."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode

    def logits(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out  # (GoogLeNet in train mode: its logits and aux heads')

    def loss(self, x):
        return self.logits(x).pow(2).sum()

    def forward(self, x):
        if self.mode == "jvp":
            return func.jvp(self.logits, (x,), (torch.ones_like(x),))[1]
        if self.mode == "hvp":
            return func.jvp(func.grad(self.loss), (x,), (torch.ones_like(x),))[1]
        if self.mode == "hvp-params":
            params = {k: v.detach() for k, v in self.net.named_parameters()}
            buffers = dict(self.net.named_buffers())

            def loss(p):
                out = func.functional_call(self.net, {**p, **buffers}, (x,))
                return (out[0] if isinstance(out, tuple) else out).pow(2).sum()

            tangents = {k: torch.ones_like(v) for k, v in params.items()}
            return torch.cat([g.flatten() for g in func.jvp(func.grad(loss), (params,), (tangents,))[1].values()])
        x = x.detach().requires_grad_(True)
        gradient = torch.autograd.grad(self.loss(x), x, create_graph=True)[0]
        if self.mode == "saliency":
            return gradient
        return ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()


def hugging_face(name: str) -> nn.Module:
    """transformers' model of that name, 2 layers of width 32 with 4 heads (Llama's 2 key-value heads)."""
    import transformers as t

    small = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=100)
    pair = dict(encoder_layers=2, decoder_layers=2, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4,
                encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100)
    return {"hf-gpt2": lambda: t.GPT2Model(t.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100)),
            "hf-llama": lambda: t.LlamaModel(t.LlamaConfig(**small, num_key_value_heads=2)),
            "hf-bert": lambda: t.BertModel(t.BertConfig(**small)),
            "hf-t5": lambda: t.T5Model(t.T5Config(num_layers=2, num_decoder_layers=2, d_model=32, d_kv=8, num_heads=4,
                                                  d_ff=64, vocab_size=100)),
            "hf-bart": lambda: t.BartModel(t.BartConfig(**pair)),
            "hf-whisper": lambda: t.WhisperModel(t.WhisperConfig(**pair, num_mel_bins=16, max_source_positions=4,
                                                                 pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                                 decoder_start_token_id=1))}[name]()


class AlongEmbeddings(nn.Module):
    """A Hugging Face network differentiated along its (decoder's) input embeddings (HF_MODES); an encoder-decoder's
    encoder input a fixed buffer (Whisper's: 16 mel bins x 8 frames)."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode
        self.pair = net.config.is_encoder_decoder
        self.register_buffer("source", torch.randn(2, 16, 8) if "Whisper" in type(net).__name__ else
                             torch.randn(2, 8, 32))

    def states(self, x, source=None):
        source = self.source if source is None else source
        if not self.pair:
            return self.net(inputs_embeds=x).last_hidden_state
        given = {"input_features": source} if "Whisper" in type(self.net).__name__ else {"inputs_embeds": source}
        return self.net(**given, decoder_inputs_embeds=x).last_hidden_state

    def forward(self, x):
        with sdpa_kernel(SDPBackend.MATH):
            one = torch.ones_like(x)
            if self.mode == "jvp":
                return func.jvp(self.states, (x,), (one,))[1]
            if self.mode == "jacfwd":
                return func.jacfwd(lambda p: self.states(p)[0, 0, :4], randomness="same")(x)  # (dropout: trained)
            if self.mode == "hvp":
                return func.jvp(func.grad(lambda p: self.states(p).pow(2).sum()), (x,), (one,))[1]
            return func.jvp(lambda p, s: self.states(p, s), (x, self.source), (one, torch.ones_like(self.source)))[1]


def build(name: str, size: int) -> nn.Module:
    import timm
    import torchvision

    if name in timm.list_models():
        extra = {"img_size": size} if "vit" in name or "deit" in name else {}
        return timm.create_model(name, pretrained=False, num_classes=10, **extra)
    return getattr(torchvision.models, name)(num_classes=10)


def check(name: str, mode: str, size: int, attention: str = "") -> str:
    """One network in one mode (a Hugging Face one with ``attention``, its forward and its training step)."""
    trained, shown = name in HF or mode == "penalty", f"{mode} {attention}".strip()
    try:
        if name in HF:
            net = hugging_face(name).eval()
            net.set_attn_implementation(attention)
            model, shape = AlongEmbeddings(net, mode).eval(), (2, 8, 32)
        else:
            model, shape = Differentiating(build(name, size).eval(), mode), (2, 3, size, size)
        a = archcalc.analyze(model, [shape], device="meta", backward=trained)
        with sdpa_kernel(SDPBackend.MATH):
            if trained:
                model.train()  # (archcalc counts a training step in train mode)
                reference = step_macs(model, shape)
            else:
                torch.manual_seed(0)
                with AtenMacs() as counter:
                    model(torch.randn(shape))
                reference = (counter.macs, None)
    except Exception as error:  # (PyTorch's own refusals: reported, the sweep goes on)
        return f"{name:26} {shown:11} fails: {str(error).splitlines()[0][:110]}"
    ours = (a.totals.macs, a.totals.backward_macs if trained else None)
    ratio = ours[0] / reference[0] if reference[0] else float("nan")
    step = f"  step {ours[1]:,} / {reference[1]:,}" if trained else ""
    unknown = [f"{r.name}: {r.note[:70]}" for r in a.not_counted] + [n[:110] for n in a.notes if "not counted" in n]
    verdict = "equal" if ours == reference else "not counted" if unknown else "DIFFERENT"
    notes = "; ".join(unknown[:1])
    return f"{name:26} {shown:11} {ours[0]:>15,} / {reference[0]:>15,} = {ratio:.6f}{step}  {verdict} {notes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=NETWORKS + HF)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    options = parser.parse_args()
    different = 0
    for name in options.names:
        if name not in HF:
            runs = [(mode, "") for mode in options.modes]
        else:  # (along the two inputs: an encoder-decoder's)
            runs = [(mode, attention) for mode in HF_MODES if mode != "both" or name in ("hf-t5", "hf-bart")
                    for attention in ("eager", "sdpa")]
        for mode, attention in runs:
            line = check(name, mode, options.size, attention)
            different += "DIFFERENT" in line
            print(line, flush=True)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
