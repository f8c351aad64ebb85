"""What a trained FWM or MNM writes: cosine similarity of write keys and of written values across
time steps for one input (the MNM blog's Figure 3), as a PNG.

Supervised and LM runs read a token sequence; RL runs play one episode of their eval env (actions
sampled from the policy) and label each step with its action and reward.

The keys and values are captured with a forward hook on the core's ``write_trace_source`` (a
module of the core) and turned into write keys and values by the core's own ``write_trace``, the
split the scans use (:meth:`fwmrl.memory.fwm.FWMCore.write_trace`,
:meth:`fwmrl.memory.mnm.MNMCore.write_trace`):

* FWM: the outputs of ``write_proj``; the write key is the outer product ``tanh(ŝ) ⊗ tanh(r̂)``
  (flattened, the address of the write in ``F``) and the value ``tanh(v̂)``.
* MNM: the controller's hidden state ``h`` through :meth:`~fwmrl.memory.mnm.MNMCore.interface`;
  the write keys ``k^w`` and values ``v^w`` of all heads are concatenated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from fwmrl.config import ConfigError  # noqa: E402
from fwmrl.plots import save_figure  # noqa: E402
from fwmrl.tasks.model import SequenceModel  # noqa: E402


def capture_writes(model: SequenceModel, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``tokens [T]`` through ``model`` (batch of one) and return the write keys ``[T, K]``
    and written values ``[T, V]`` of its FWM or MNM core."""

    def run() -> None:
        model.eval()
        model(tokens.view(-1, 1))

    return capture_core_writes(model.core, run)


def capture_core_writes(core: torch.nn.Module, run: Callable[[], None]) -> tuple[Tensor, Tensor]:
    """Call ``run()`` (which drives ``core`` over one sequence of batch size one, in one call or
    step by step) and return the write keys ``[T, K]`` and written values ``[T, V]``."""
    captured: list[Tensor] = []
    if not hasattr(core, "write_trace"):
        raise ConfigError(
            f"plot-memory needs an FWM or MNM core, this run has {type(core).__name__}"
        )

    def keep(_module: torch.nn.Module, _inputs: object, out: Tensor | tuple[Tensor, ...]) -> None:
        captured.append((out[0] if isinstance(out, tuple) else out).detach())  # LSTMCell: (h, c)

    handle = core.write_trace_source.register_forward_hook(keep)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    outputs = torch.cat(captured, dim=0)  # batch one: FWM [T, 1, 3m + 1], MNM h [T, d_h]
    with torch.no_grad():
        return core.write_trace(outputs.reshape(-1, outputs.shape[-1]))


def cosine_matrix(x: Tensor) -> Tensor:
    """``[T, T]`` cosine similarities of the rows of ``x``."""
    x = torch.nn.functional.normalize(x, dim=-1)
    return x @ x.T


def _default_tokens(config, steps: int) -> Tensor:  # noqa: ANN001
    from fwmrl.tasks.job import load_task_data

    if config.task.kind == "retrieval":  # a few queries are enough: skip the 100k training ones
        config = config.model_copy(
            update={
                "task": config.task.model_copy(
                    update={"train_queries": 1, "valid_queries": 50, "test_queries": 1}
                )
            }
        )
    stream = load_task_data(config).valid
    return torch.from_numpy(stream.inputs[:steps])


def _tokens_from_text(text: str, vocab: list[str], kind: str) -> Tensor:
    if kind == "retrieval":
        items = list(text.replace(" ", ""))
    elif kind == "catbabi":
        from fwmrl.tasks.babi import tokenize

        items = tokenize(text)
    else:
        items = text.split()
    index = {w: i for i, w in enumerate(vocab)}
    unknown = [w for w in items if w not in index]
    if unknown and "<unk>" not in index:
        raise ConfigError(f"--input has tokens outside the vocabulary: {sorted(set(unknown))}")
    return torch.tensor([index.get(w, index.get("<unk>", 0)) for w in items], dtype=torch.long)


def rollout_writes(
    policy: torch.nn.Module,
    config,
    steps: int,
    seed: int = 0,  # noqa: ANN001
) -> tuple[Tensor, Tensor, list[str]]:
    """Play up to ``steps`` steps of one eval-env episode with an RL run's policy; returns the
    write keys, the written values and one label per step (``"<t>:a<action>"``, ``+`` after a
    positive reward, ``|`` where the episode ended)."""
    from fwmrl.agents.evaluation import act, start_round
    from fwmrl.agents.job import make_eval_env

    env = make_eval_env(config, 1)
    generator = torch.Generator().manual_seed(seed)
    labels: list[str] = []

    def run() -> None:
        obs, state, start = start_round(env, policy, seed)
        for t in range(steps):
            action, state = act(policy, obs, state, start, generator)
            obs, reward, terminated, truncated, _ = env.step(action)
            label = f"{t}:a{action[0]}" + ("+" if reward[0] > 0 else "")
            labels.append(label)
            if terminated[0] or truncated[0]:
                labels[-1] += "|"
                break
            start = torch.zeros(1, dtype=torch.bool)

    try:
        policy.eval()
        keys, values = capture_core_writes(policy.core, run)
    finally:
        env.close()
    return keys, values, labels


def plot_memory(
    run_dir: str | Path, out: str | Path | None = None, text: str | None = None, steps: int = 40
) -> Path:
    """Draw the key and value similarity matrices of a run's model on ``text`` (default: the first
    ``steps`` tokens of the validation stream). Returns the PNG path (default
    ``RUN_DIR/memory.png``). RL runs play ``steps`` steps of one episode instead (``text`` must
    be ``None``)."""
    from fwmrl.rundir import load_run_config

    config = load_run_config(run_dir)
    if config.task.kind == "rl":
        if text is not None:
            raise ConfigError(
                "plot-memory: --input is for supervised/LM runs; RL runs play an episode"
            )
        from fwmrl.agents.job import load_policy

        keys, values, labels = rollout_writes(load_policy(run_dir, config), config, steps)
    else:
        from fwmrl.tasks.job import load_task_model

        model, vocab, config = load_task_model(run_dir)
        tokens = (
            _tokens_from_text(text, vocab, config.task.kind)
            if text
            else _default_tokens(config, steps)
        )
        if tokens.numel() == 0:
            raise ConfigError("plot-memory: the input has no tokens")
        keys, values = capture_writes(model, tokens)
        labels = [vocab[int(t)] for t in tokens]
    n = len(labels)
    size = min(6.0 + n * 0.08, 14.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size), dpi=100)
    for ax, mat, name in ((axes[0], keys, "write keys"), (axes[1], values, "written values")):
        im = ax.imshow(cosine_matrix(mat).numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"cosine similarity of {name}")
        if n <= 80:
            ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(n), labels, fontsize=7)
        ax.set_xlabel("time step")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    what = config.env.id if config.task.kind == "rl" else config.task.kind
    fig.suptitle(f"{Path(run_dir).name}: {config.core.name} on {what}")
    return save_figure(fig, out if out else Path(run_dir) / "memory.png")
