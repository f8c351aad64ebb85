"""Time the gated-FW core before and after the fused update, in one process.

    python docs/results/retrieval/speed.py [OLD_COMMIT]

Loads ``fwmrl/memory/gated_fw.py`` of ``OLD_COMMIT`` (default 59b42c9, before the fused rank-one
update) with ``git show``, builds both cores at the paper's sizes with the same weights, compares
their float32 outputs and gradients with a float64 run of the old one, and times forward +
backward of one 32 x 256 window (one thread).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fwmrl.memory import gated_fw


def load_old(commit: str):
    source = subprocess.run(
        ["git", "show", f"{commit}:fwmrl/memory/gated_fw.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "gated_fw_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gated_fw_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gated_fw_old"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def fwd_bwd(core, x, repeats: int = 5) -> tuple[float, torch.Tensor, list[torch.Tensor]]:
    # (output, state) first: an old core returns the pair, a current one a CoreOutput triple
    state = core(x)[1].detach()
    y = core(x, state)[0]
    grads = torch.autograd.grad(y.square().sum(), list(core.parameters()))
    start = time.process_time()
    for _ in range(repeats):
        core(x, state)[0].sum().backward()
    return (time.process_time() - start) / max(repeats, 1), y.detach(), grads


def main() -> None:
    torch.set_num_threads(1)
    old = load_old(sys.argv[1] if len(sys.argv) > 1 else "59b42c9")
    torch.manual_seed(0)
    new_core = gated_fw.GatedFWCore(input_size=15)
    old_core = old.GatedFWCore(input_size=15)
    old_core.load_state_dict(new_core.state_dict())
    x = torch.randn(32, 256, 15)
    t_old, y_old, g_old = fwd_bwd(old_core, x)
    t_new, y_new, g_new = fwd_bwd(new_core, x)
    reference = old.GatedFWCore(input_size=15).double()
    reference.load_state_dict({k: v.double() for k, v in new_core.state_dict().items()})
    _, y_ref, g_ref = fwd_bwd(reference, x.double(), repeats=0)
    for name, y, g in (("old", y_old, g_old), ("new", y_new, g_new)):
        rel = max(
            ((a.double() - b).norm() / b.norm()).item() for a, b in zip(g, g_ref, strict=True)
        )
        out = (y.double() - y_ref).abs().max().item()
        print(f"{name} float32 against float64: outputs {out:.1e}, gradients (relative) {rel:.1e}")
    print(
        f"forward + backward of a 32 x 256 window (CPU s, one thread): old {t_old:.3f}, "
        f"new {t_new:.3f}, speed-up {t_old / t_new:.2f}x"
    )


if __name__ == "__main__":
    main()
