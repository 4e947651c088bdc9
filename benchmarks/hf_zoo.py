"""Hugging Face's networks, built from their configurations (random weights, nothing downloaded), against
independent counts of the same model, in one run:

    pip install transformers   # (not one of archcalc's dependencies)
    python benchmarks/hf_zoo.py [--memory] [NAME ...]

For each network: its parameters against transformers' own num_parameters(); the forward pass's FLOPs (2 x
MACs) against torch.utils.flop_counter, and a training step's (forward + backward, the loss the sum of every
output) likewise, both on the meta device (on CPU tensors flop_counter counts the CPU's attention kernel as
nothing, pytorch/pytorch#195460), the training step's less flop_counter's excess on grouped convolutions' ∂W
(g times what it is: ConvNeXt's depthwise convolutions read 0.34 otherwise); with --memory, the CPU peak of
two Adam steps simulated on the meta device against the real tensors of the same steps on the CPU
(benchmarks/memory_zoo.py's tracker).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import archcalc

TOKENS, IMAGE = (2, 64), (2, 3, 224, 224)


def _zoo():
    import transformers as t

    sdpa = {"attn_implementation": "sdpa"}
    return {  # name -> (model class, configuration, input shape with the batch, token ids or not)
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(**sdpa), TOKENS, True),
        "bert-base": (t.BertModel, t.BertConfig(**sdpa), TOKENS, True),
        "distilbert": (t.DistilBertModel, t.DistilBertConfig(**sdpa), TOKENS, True),
        "roberta-base": (t.RobertaModel, t.RobertaConfig(**sdpa), TOKENS, True),
        "llama-gqa": (t.LlamaForCausalLM, t.LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376,
                                                         num_hidden_layers=4, num_attention_heads=8,
                                                         num_key_value_heads=2, **sdpa), TOKENS, True),
        "mistral": (t.MistralForCausalLM, t.MistralConfig(vocab_size=32000, hidden_size=512, intermediate_size=1792,
                                                           num_hidden_layers=4, num_attention_heads=8,
                                                           num_key_value_heads=2, sliding_window=32, **sdpa),
                    TOKENS, True),
        "t5-encoder": (t.T5EncoderModel, t.T5Config(), TOKENS, True),
        "vit-base": (t.ViTForImageClassification, t.ViTConfig(**sdpa), IMAGE, False),
        "swin-tiny": (t.SwinForImageClassification, t.SwinConfig(), IMAGE, False),
        "convnext-tiny": (t.ConvNextForImageClassification, t.ConvNextConfig(), IMAGE, False),
        "resnet-50": (t.ResNetForImageClassification, t.ResNetConfig(), IMAGE, False),
    }


def _loss(output) -> torch.Tensor:
    """Every floating-point output summed: a loss every output leads to, as archcalc's --pass train takes it."""
    values = [output] if isinstance(output, torch.Tensor) else list(output.values())
    return sum(v.float().sum() for v in values if isinstance(v, torch.Tensor) and v.is_floating_point())


def _flop_counter(model, x) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs as torch.utils.flop_counter counts them, on the meta device."""
    with FlopCounterMode(display=False) as counter:
        y = model(x)
        forward = counter.get_total_flops()
        _loss(y).backward()
    return forward, counter.get_total_flops()


def _grouped_excess(model, analysis) -> int:
    """What flop_counter adds to a grouped convolution's ∂W: it multiplies by all C_in channels, not C_in/g
    (tests/test_backward.py), so (g - 1) x its MACs x 2 FLOPs more, for every grouped convolution trained."""
    modules = dict(model.named_modules())
    return sum(2 * (modules[r.name].groups - 1) * r.macs for r in analysis.layers
               if isinstance(modules.get(r.name), torch.nn.Conv2d) and modules[r.name].weight.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--memory", action="store_true")
    options = parser.parse_args()
    zoo = _zoo()
    print(f"{'model':14s} {'params':>12s} {'/theirs':>8s} {'forward GFLOPs':>14s} {'/flop_counter':>13s} "
          f"{'train GFLOPs':>12s} {'/flop_counter':>13s}" + (f" {'CPU peak MiB':>12s} {'/real':>8s}"
                                                              if options.memory else "") + f" {'s':>5s}")
    for name in options.names or zoo:
        cls, config, shape, tokens = zoo[name]
        start = time.perf_counter()
        torch.manual_seed(0)
        model = cls(config)
        dtypes = [f"int64:{config.vocab_size}"] if tokens else None
        a = archcalc.analyze(model, shape, input_dtypes=dtypes, backward=True)
        with torch.device("meta"):
            twin = cls(config).train()
        x = torch.zeros(shape, dtype=torch.int64, device="meta") if tokens else torch.empty(shape, device="meta")
        forward, train = _flop_counter(twin, x)
        ours_train = 2 * (a.totals.macs + a.totals.backward_macs)
        train -= _grouped_excess(model, a)
        line = (f"{name:14s} {a.totals.params:12,d} {a.totals.params / model.num_parameters():8.6f} "
                f"{a.totals.flops / 1e9:14.3f} {a.totals.flops / forward:13.6f} {ours_train / 1e9:12.3f} "
                f"{ours_train / train:13.6f}")
        if options.memory:
            import memory_zoo

            from archcalc.models.user import module_entry

            entry = module_entry(model, shape[1:])
            simulated = archcalc.memory(model, shape, input_dtypes=dtypes, optimizer="adam").peak.allocated
            real = memory_zoo.real_peak(entry, shape[0], None, shape[1:], dtypes, "adam")
            line += f" {simulated / 2**20:12.1f} {real / simulated:8.6f}"
        print(f"{line} {time.perf_counter() - start:5.1f}", flush=True)


if __name__ == "__main__":
    main()
