"""The simulations replace torch's functions for their own thread only (archcalc/patching.py): another
thread meanwhile computes with PyTorch's own, and two threads simulating at once get what each gets alone."""

import math
import threading

import torch
import torch.nn.functional as F

from archcalc.models.registry import ModelEntry
from archcalc.training.autocast import autocast
from archcalc.patching import replaced
from archcalc.training.peak import simulate


def _while_open(context, inside, outside):
    """inside() on a thread that holds ``context`` open, outside() on this one meanwhile: both results."""
    opened, finished, seen = threading.Event(), threading.Event(), {}

    def hold():
        with context:
            seen["inside"] = inside()
            opened.set()
            finished.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert opened.wait(30)
    seen["outside"] = outside()
    finished.set()
    thread.join()
    return seen["inside"], seen["outside"]


def test_a_replacement_is_seen_only_by_the_thread_that_made_it():
    sqrt = math.sqrt
    inside, outside = _while_open(replaced([(math, "sqrt", lambda x: -1.0)]), lambda: math.sqrt(4.0),
                                  lambda: math.sqrt(4.0))
    assert (inside, outside) == (-1.0, 2.0) and math.sqrt is sqrt


class Doubled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


def test_a_class_method_stays_one_for_each_subclass():
    """torch.autograd.Function.apply, replaced while a trace counts gradients (custom_functions.py): the
    replacement is called with the subclass it is called on, only on its own thread, and the class method is
    PyTorch's again afterwards."""
    original = vars(torch.autograd.Function)["apply"]
    called = []

    def apply(cls, *args):
        called.append(cls)
        return original.__get__(None, cls)(*args)

    x = torch.ones(2)
    inside, outside = _while_open(replaced([(torch.autograd.Function, "apply", apply)]),
                                  lambda: Doubled.apply(x).tolist(), lambda: Doubled.apply(x).tolist())
    assert inside == outside == [2.0, 2.0] and called == [Doubled]
    assert vars(torch.autograd.Function)["apply"] is original


def test_another_thread_keeps_float32_while_one_simulates_autocast():
    """During a simulated bfloat16 region, this thread's real float32 linear layer and matmul stay float32
    (torch.Tensor's methods too), and afterwards torch.Tensor holds no name it did not hold before."""
    before = set(vars(torch.Tensor))
    w = torch.randn(8, 8)

    def dtypes():
        x = torch.randn(4, 8)
        return F.linear(x, w).dtype, torch.matmul(x, w).dtype, x.matmul(w).dtype, (x @ w).dtype

    def simulated():
        x = torch.randn(4, 8, device="meta")
        return F.linear(x, w.to("meta")).dtype, x.matmul(w.to("meta")).dtype

    inside, outside = _while_open(autocast("cpu", "bfloat16"), simulated, dtypes)
    assert inside == (torch.bfloat16, torch.bfloat16)
    assert outside == (torch.float32,) * 4 and set(vars(torch.Tensor)) == before


def test_two_threads_simulating_at_once_get_what_each_gets_alone():
    """Attention (fused kernels) under autocast and a convolutional network in float32, on two threads."""
    vit = ModelEntry("tiny_vit", "test", "tests.networks:TinyViT", (3, 32, 32), "", "")
    unet = ModelEntry("unet_block", "test", "tests.networks:UNetBlock", (3, 32, 32), "", "")
    jobs = {"vit": (vit, None, 4, "adam", "float32", "cuda", "bfloat16"),
            "unet": (unet, None, 4, "momentum", "float32", "cpu", None)}
    alone = {name: simulate(*job).allocated for name, job in jobs.items()}
    together = {}

    def run(name):
        for _ in range(3):
            together.setdefault(name, set()).add(simulate(*jobs[name]).allocated)

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    sdpa = F.scaled_dot_product_attention
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == {name: {value} for name, value in alone.items()}
    assert F.scaled_dot_product_attention is sdpa
