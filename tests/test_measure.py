"""Memory accounting without artefacts: the saved-tensor hook frees what autograd frees, and the live-bytes
tracker sees every storage of a call (checkpoint's recomputation included), identically run to run."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.measure import format_mib, live_tensor_bytes, saved_tensor_bytes

SOFTMAX_BYTES = 10_000 * 4  # the one tensor softmax saves for backward (its output), float32


def repeated_softmax_graphs(repeats: int = 20):
    """Build `repeats` softmax graphs, each differentiated with retain_graph=True and then dropped."""
    x = torch.randn(10_000, requires_grad=True)
    with live_tensor_bytes() as live, saved_tensor_bytes() as saved:
        for _ in range(repeats):
            y = torch.softmax(2 * x, dim=0)
            torch.autograd.grad(y[0], x, retain_graph=True)
            del y
    return live, saved


def test_saved_tensor_hook_does_not_keep_retained_graphs_alive():
    """A hook that holds the saved output itself (with its grad_fn) builds a cycle through C++ and keeps all
    20 graphs (800 kB) alive; the hook must hold no more than autograd would: nothing once they are dropped."""
    live, saved = repeated_softmax_graphs()
    assert saved.total == 20 * SOFTMAX_BYTES and saved.peak == SOFTMAX_BYTES
    assert saved.live == 0
    assert live.held_at_exit == 0


def one_step_graph(problem):
    """(saved bytes of one network call's graph wrt its input, live-bytes peak of its forward + backward)."""
    solver, i = problem.solver, problem.steps
    x = problem.latent.clone().requires_grad_(True)
    with live_tensor_bytes() as live, saved_tensor_bytes() as saved:
        out = problem.model(solver.model_input(i, x), solver.timestep(i))
        torch.autograd.grad(out, x, torch.ones_like(out))
    return saved.total, live.peak


def test_adjoint_holds_one_step_graph_at_a_time():
    """torchdiffeq's backward uses retain_graph=True: under a leaking hook every step's graph stayed alive
    (saved bytes 0.98x BPTT's on unet-tiny, whose attention softmax saves its output); adjoint's live-graph
    peak must stay within 2x of one step's graph."""
    problem = make_problem("unet-tiny", steps=4, dtype=torch.float32)
    step_saved, step_live = one_step_graph(problem)
    with live_tensor_bytes() as live, saved_tensor_bytes() as saved:
        sdo.grad(problem, "adjoint")
    assert saved.peak <= 2 * step_saved
    assert live.peak <= 2 * step_live
    assert live.held_at_exit == 0


def live_peak(name: str, steps: int, **options) -> int:
    problem = make_problem("mlp", steps=steps, dim=2, hidden=64, batch=64)
    with live_tensor_bytes() as live:
        sdo.grad(problem, name, **options)
    return live.peak


def test_live_bytes_are_identical_across_runs():
    problem = make_problem("mlp", steps=4, dim=2, hidden=64, batch=64, wrt="params")
    runs = []
    for _ in range(2):
        with live_tensor_bytes() as live:
            sdo.grad(problem, "bptt")
        runs.append(live)
    assert runs[0] == runs[1] and runs[0].peak > 0


def test_live_peak_grows_with_n_for_bptt_not_sdo_and_counts_checkpoint():
    """BPTT holds N graphs, SDO one; checkpoint's boundary states and segment recomputation are counted (the
    saved-tensor hook does not see them: checkpoint installs its own)."""
    bptt = {n: live_peak("bptt", n) for n in (3, 6)}
    sdo_peak = {n: live_peak("sdo", n) for n in (3, 6)}
    assert bptt[6] > 1.6 * bptt[3]
    assert sdo_peak[6] <= 1.05 * sdo_peak[3]
    ckpt = live_peak("checkpoint", 6, segment=2)
    assert sdo_peak[6] < ckpt < bptt[6]


def test_format_mib_marks_values_below_the_resolution():
    assert format_mib(3 * 2**20) == "3"
    assert format_mib(1536 * 1024, digits=2) == "1.5"
    assert format_mib(10_000, resolution=2**18) == "< 0.25"
    assert format_mib(None) == "n/a"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_live_bytes_on_cuda_match_cpu():
    """Logical storage sizes: the same peak on CUDA as on CPU for the same float64 problem."""
    peaks = []
    for device in ("cpu", "cuda"):
        problem = make_problem("mlp", steps=4, dim=2, hidden=64, batch=64, device=device)
        with live_tensor_bytes() as live:
            sdo.grad(problem, "bptt")
        peaks.append(live.peak)
    assert peaks[0] == peaks[1]
