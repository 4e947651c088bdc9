"""A training step of any network, not only of one image tensor: token ids and masks (several inputs, integer
and boolean dtypes), nn.Modules given from Python, builder arguments that reach the measured step, and a forward
that reads a tensor's value (a packed sequence), simulated by memory, --fit and time --training."""

from pathlib import Path

import pytest
import torch

import archcalc
from archcalc.analysis.engine import build, entry_inputs
from archcalc.errors import InputError
from archcalc.models.arguments import with_arguments
from archcalc.models.user import lookup
from archcalc.training.peak import simulate
from tests.networks import EdgeListGraph, TinyGPT
from tests.test_peak import real_cpu_peak

NETWORKS = Path(__file__).with_name("networks.py")
GPT = f"{NETWORKS}:TinyGPT"
TOKENS = ["int64:100", "bool"]  # token ids below the vocabulary, a padding mask


def test_a_language_model_on_token_ids_and_a_mask_peaks_where_real_cpu_tensors_do():
    """Token ids (int64) and a padding mask (bool), two inputs: the simulated step holds both as its input and
    peaks, to the byte, where real CPU tensors running the same two Adam steps do."""
    entry = lookup(GPT, [(16,), (16,)])
    simulated = simulate(entry, [(16,), (16,)], 4, "adam", device="cpu", input_dtypes=TOKENS)
    real = real_cpu_peak(entry, entry_inputs(entry, [(16,), (16,)], 4, TOKENS), "adam")
    assert simulated.allocated == real
    assert simulated.inputs == "4x16 (int64), 4x16 (bool)"
    assert dict((t.name, t.bytes) for t in simulated.terms)["input"] == 4 * 16 * 8 + 64  # (a block of 64 bytes)


def test_memory_and_fit_take_several_inputs_and_their_dtypes_on_the_command_line(cli):
    args = ["--input", "16", "--input", "16", "--input-dtype", "int64", "--input-dtype", "bool"]
    data = cli("memory", GPT, *args, "--batch", "4", "--optimizer", "adam", "-f", "json").json()
    assert data["inputs"] == "4x16 (int64), 4x16 (bool)" and data["input_shape"] == [4, 16]
    assert data["totals"]["input_bytes"] == 4 * 16 * 8 + 4 * 16 * 1
    assert data["arithmetic"]["input"] == "4*16 * 8 bytes + 4*16 * 1 bytes = 576"
    params = sum(p.numel() for p in TinyGPT().parameters())  # the tied head counted once
    assert data["totals"]["params_bytes"] == 4 * params
    fit = cli("memory", GPT, *args, "--fit", "24MiB", "-f", "json")
    assert fit.code == 0, fit.err
    answer = fit.json()["batch"]
    entry = lookup(GPT, [(16,), (16,)])
    at = {b: simulate(entry, [(16,), (16,)], b, device="cpu", input_dtypes=["int64", "bool"]).allocated
          for b in (answer, answer + 1)}
    assert at[answer] <= 24 * 2**20 < at[answer + 1]
    table = cli("memory", GPT, *args, "--fit", "24MiB")
    assert "input 16 (int64), 16 (bool) per sample" in " ".join(table.out.split())


def test_a_module_from_python_is_simulated_without_being_touched():
    """archcalc.memory and archcalc.time take the nn.Module a notebook holds: the same numbers as its file's
    spec, the module's weights, device and mode left as they were; measuring needs a name or spec (a fresh
    process builds it) and says so in one line."""
    net = TinyGPT().train(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mine = archcalc.memory(net, [(4, 16), (4, 16)], input_dtypes=TOKENS, optimizer="adam")
    theirs = archcalc.memory(GPT, [(4, 16), (4, 16)], input_dtypes=TOKENS, optimizer="adam")
    assert mine.peak.allocated == theirs.peak.allocated and mine.total_bytes == theirs.total_bytes
    assert mine.model == "TinyGPT" and not net.training
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert archcalc.memory(net, [(1, 16), (1, 16)], input_dtypes=TOKENS, fit="24MiB").batch == \
        archcalc.memory(GPT, [(1, 16), (1, 16)], input_dtypes=TOKENS, fit="24MiB").batch
    with pytest.raises(InputError, match="measuring runs two real steps in a fresh process"):
        archcalc.memory(net, [(4, 16), (4, 16)], input_dtypes=TOKENS, measure="cpu")
    (step,) = archcalc.time(net, [(4, 16), (4, 16)], input_dtypes=TOKENS, training=True, warmup=1, repeat=2)
    assert not step.error and step.runs >= 2 and step.inputs == "4x16 (int64), 4x16 (bool)"
    forward = archcalc.analyze(net, [(4, 16), (4, 16)], input_dtypes=TOKENS, backward=True).totals
    assert step.flops == 2 * (forward.macs + forward.backward_macs)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_time_on_token_ids_says_samples_not_images(cli):
    run = cli("time", GPT, "--input", "16", "--input-dtype", "int64:100", "--batch", "2", "--training",
              "--warmup", "1", "--repeat", "2", "-f", "json")
    assert run.code == 0, run.err
    (result,) = run.json()["results"]
    assert result["inputs"] == "2x16 (int64)" and result["error"] is None
    table = cli("time", GPT, "--input", "16", "--input-dtype", "int64:100", "--warmup", "0", "--repeat", "1")
    assert "Samples/s" in table.out and "Images/s" not in table.out


def test_the_measured_step_is_the_model_built_with_its_arguments(cli):
    """--arg reaches the fresh process that measures: what it holds before the step is the model with
    reduction 2 (more parameters than the default 16), with its buffers and the input."""
    data = cli("memory", "se_resnet18", "--arg", "reduction=2", "--batch", "2", "--measure", "cpu",
               "-f", "json").json()
    default = archcalc.memory("se_resnet18", (2, 3, 224, 224))
    assert data["totals"]["params_bytes"] > default.params_bytes
    model = build(with_arguments(lookup("se_resnet18"), {"reduction": 2}), torch.device("meta"), torch.float32)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert data["measured"]["before_bytes"] >= data["totals"]["params_bytes"] + data["totals"]["input_bytes"]
    assert data["measured"]["before_bytes"] - data["totals"]["params_bytes"] - data["totals"]["input_bytes"] \
        == buffers  # the BatchNorms' statistics and counters, nothing more


def test_a_forward_that_reads_values_runs_its_steps_on_real_cpu_tensors(cli):
    """pad_packed_sequence reads the packed sequence's indices back to the CPU: the steps run with real CPU
    tensors, said in a note, and peak 64 bytes (one block: those 8 int64 indices, kept for backward) above the
    sorted tagger, which has no indices and is simulated on the meta device. CUDA's peak cannot be had that
    way: one line, exit 1."""
    spec, size = f"{NETWORKS}:PackedTagger", (20,)
    unsorted = simulate(lookup(spec, size), size, 8, "adam", device="cpu", input_dtypes=["int64:100"])
    sorted_ = simulate(with_arguments(lookup(spec, size), {"sort": True}), size, 8, "adam", device="cpu",
                       input_dtypes=["int64:100"])
    assert unsorted.notes[0].startswith("networks.py line ") and "ran on the CPU with real tensors" in \
        unsorted.notes[0]
    assert not any("real tensors" in n for n in sorted_.notes)
    assert unsorted.allocated - sorted_.allocated == 64
    run = cli("memory", spec, "--input", "20", "--input-dtype", "int64", "--batch", "8", "--device", "cuda")
    assert run.code == 1 and "its CUDA peak cannot be simulated" in run.err and len(run.err.splitlines()) == 1
    assert unsorted.real and not sorted_.real


def test_fit_refuses_a_budget_this_cpu_cannot_give_where_every_batch_runs_for_real(cli):
    """A forward that reads values runs the steps of each batch --fit tries on real CPU tensors: a budget
    beyond the machine's free memory is refused at batch 1 (it would swap), a small one is answered."""
    spec = f"{NETWORKS}:PackedTagger"
    run = cli("memory", spec, "--input", "20", "--input-dtype", "int64:100", "--fit", "64TiB")
    assert run.code == 1 and "runs for real on this CPU, and 64.00 TiB is more than the" in run.err
    assert len(run.err.strip().splitlines()) == 1
    small = cli("memory", spec, "--input", "20", "--input-dtype", "int64:100", "--fit", "2MiB", "-f", "json")
    assert small.code == 0 and small.json()["batch"] >= 1 and small.json()["real_tensors"]
    from archcalc.training.fit import Fit, Setting

    said = Fit("tagger", 2**21, 3, ((3, 2**20),), real=True, setting=Setting("sgd", "float32", "20 (int64)")).report()
    assert "its two steps ran on real CPU tensors at each" in said.footer[1]


class TwoHeads(torch.nn.Module):
    """A trunk and two classifiers, both returned (GoogLeNet's auxiliary heads in training)."""

    def __init__(self):
        super().__init__()
        self.trunk, self.main, self.aux = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3), torch.nn.Linear(8, 3)

    def forward(self, x):
        h = self.trunk(x).relu()
        return self.main(h), self.aux(h)


def test_every_output_that_needs_a_gradient_is_in_the_loss():
    """The timed and the simulated steps train both heads, as --pass train counts them (rows that lead to no
    output get no gradient: tests/test_backward.py); an output with none says so in one line."""
    from archcalc.timing.measure import optimizer_for, training_step

    torch.manual_seed(0)
    model = TwoHeads()
    aux = model.aux.weight.detach().clone()
    training_step(model, torch.randn(4, 8), optimizer_for(model.parameters(), "sgd"))()
    assert not torch.equal(model.aux.weight, aux)
    a = archcalc.analyze(TwoHeads(), (4, 8), backward=True)
    assert next(r for r in a.layers if r.name == "aux").backward.macs == 2 * 4 * 8 * 3  # ∂x and ∂W
    (step,) = archcalc.time(TwoHeads(), (4, 8), device="cpu", training=True, warmup=0, repeat=1)
    assert step.flops == 2 * (a.totals.macs + a.totals.backward_macs)
    frozen = TwoHeads().requires_grad_(False)
    with pytest.raises(InputError, match=r"TwoHeads's output \(4x3 \(float32\), 4x3 \(float32\)\) has no floating"):
        archcalc.memory(frozen, (4, 8))


def test_a_graph_network_whose_inputs_share_no_batch_is_given_example_inputs():
    """Node features (1000 x 16) and edges (2 x 5000) have no common batch: memory and time take them as example
    inputs, and the simulated step peaks, to the byte, where the real tensors of the same two Adam steps do."""
    from archcalc.analysis.inputs import Inputs
    from archcalc.models.user import example_entry

    torch.manual_seed(0)
    net, x, edges = EdgeListGraph(), torch.randn(1000, 16), torch.randint(0, 1000, (2, 5000))
    simulated = archcalc.memory(net, inputs=(x, edges), optimizer="adam")
    real = real_cpu_peak(example_entry(net, (x, edges)), Inputs.of_example((x, edges)), "adam")
    assert simulated.peak.allocated == real
    assert dict((t.name, t.bytes) for t in simulated.peak.terms)["input"] == 1000 * 16 * 4 + 2 * 5000 * 8
    timed = archcalc.time(net, inputs=(x, edges), device="cpu", repeat=3, training=True, optimizer="adam")
    assert not timed[0].error and timed[0].median_ms > 0
    said = ("the inputs (1000x16, 2x5000 (int64)) share no batch dimension: batch 1000 is the first input's first "
            "dimension, and per-sample figures are per one of its 1000 rows")
    assert timed[0].batch == 1000 and said in timed.report().footer[-1] and said in simulated.peak.notes
    with pytest.raises(InputError, match="share no batch .* as inputs="):
        archcalc.memory(net, [(1000, 16), (2, 5000)])
    with pytest.raises(InputError, match="example inputs fix the batch"):
        archcalc.memory(net, inputs=(x, edges), fit="1GiB")


@pytest.mark.parametrize("example, batch, shared", [
    ((torch.zeros(4, 3, 8, 8),), 4, True),
    ((torch.zeros(4, 12), torch.zeros(4, 12, dtype=torch.bool)), 4, True),  # ids and their mask
    (([torch.zeros(3, 20, 30), torch.zeros(3, 24, 32)],), 2, True),  # a detector's two images, not 3 channels
    ((torch.zeros(5, 7, 8), (torch.zeros(2, 5, 16), torch.zeros(2, 5, 16))), 5, False),  # an LSTM and its state
    ((torch.zeros(()), torch.zeros(6, 4)), 6, True),  # a scalar (a diffusion step) holds no samples
    ({"pixel_values": torch.zeros(2, 3, 8, 8), "labels": torch.zeros(2, dtype=torch.long)}, 2, True),
    ((torch.zeros(34, 16), torch.zeros(2, 156, dtype=torch.long)), 34, False),  # a graph's nodes and edges
])
def test_the_batch_of_example_inputs_is_the_first_inputs_samples_and_a_disagreement_is_said(example, batch, shared):
    from archcalc.analysis.inputs import Inputs

    given = Inputs.of_example(example)
    assert (given.batch, given.shares_batch, given.batch_note() == "") == (batch, shared, shared)
