"""Typed, validated experiment configs: YAML files plus dotted command-line overrides.

A config has six sections (every key optional except ``core.name``), plus ``task`` for the
supervised and language-modelling trainers (``task.kind: rl``, the default, is the A2C or PPO trainer)::

    env:     {id: FWM-Gridworld-v0, num_envs: 64, kwargs: {size: 7}, vectorization: auto}
    core:    {name: fwm, hidden_size: 32, memory_size: 16}   # name + the core's own arguments
    policy:  {encoder_sizes: [64], activation: tanh}
    algo:    {name: a2c, n_steps: 20, gamma: 0.99, gae_lambda: 1.0, ent_coef: 0.01, ...}
    train:   {total_steps: 100000, seed: 0, checkpoint_every: 50, ...}
    logging: {tensorboard: true, wandb: disabled, log_every: 10}
    task:    {kind: retrieval, seq_len: 32, batch_size: 256, optimizer: nadam, lr: 0.002, ...}

``load_config("configs/x.yaml", ["train.total_steps=200000", "core.memory_size=16"])`` returns a
:class:`Config`; any unknown key or bad value raises :class:`ConfigError` whose message names the key
and what is allowed. Core arguments are checked against the core's constructor through the registry.

``task`` is a discriminated union on ``task.kind`` (:data:`TASKS`): ``rl`` takes no other key, and
each supervised kind lists only the keys its trainer reads (:class:`RetrievalTask`,
:class:`CatbabiTask`, :class:`LMTask`), so a key of another kind is refused naming the kinds that
have it. A flat ``task`` section saved by fwmrl before the per-kind sections (every key of every
kind) loads as its kind's keys.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from fwmrl.atomic import atomic_write_text
from fwmrl.errors import ConfigError
from fwmrl.memory import NO_CORE, CoreConfigError, available_cores, core_arguments, make_core

MAX_SEED = 2**32 - 1
"""Seeds are integers in ``[0, MAX_SEED]`` (NumPy and torch generators take them all)."""

DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]+)?|mps)$"
"""``train.device``: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvConfig(_Section):
    """Which environment to train on.

    Attributes
    ----------
    id:
        a Gymnasium id (``fwmrl envs`` lists the fwmrl ones; MiniGrid ids get flat observations).
    num_envs:
        environments stepped in parallel per update.
    kwargs:
        keyword arguments of the env constructor (``gym.make`` arguments).
    eval_kwargs:
        arguments merged over ``kwargs`` for evaluation (e.g. ``{graphs: test}``).
    vectorization:
        how the ``num_envs`` copies are stepped: ``auto`` (fwmrl ids: their batched
        NumPy implementation in this process; other ids: a ``SyncVectorEnv``), ``sync`` (a
        ``SyncVectorEnv`` of single envs) or ``async`` (a ``gymnasium.vector.AsyncVectorEnv``:
        one worker process per env; pays off for envs whose step is slow, e.g. MiniGrid with
        many envs on many cores).
    """

    id: str = "FWM-Gridworld-v0"
    num_envs: int = Field(16, ge=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    eval_kwargs: dict[str, Any] = Field(default_factory=dict)
    vectorization: Literal["auto", "sync", "async"] = "auto"


class CoreConfig(BaseModel):
    """The memory core: ``name`` plus the core's constructor arguments (all but ``input_size``).

    ``name`` is a registered core (``lstm``, ``fwm``, ``gated_fw``, ``mnm_g``, ``mnm_p``) or
    ``none`` for the memoryless baseline.
    """

    model_config = ConfigDict(extra="allow")

    name: str = "fwm"

    @field_validator("name")
    @classmethod
    def _known_core(cls, name: str) -> str:
        allowed = [NO_CORE, *available_cores()]
        if name not in allowed:
            raise ValueError(f"unknown core {name!r}; allowed: {', '.join(allowed)}")
        return name

    @property
    def kwargs(self) -> dict[str, Any]:
        """The core's constructor arguments."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_core_arguments(self) -> CoreConfig:
        kwargs = self.kwargs
        if self.name == NO_CORE:
            if kwargs:
                raise ValueError(f"core 'none' takes no arguments, got {sorted(kwargs)}")
            return self
        allowed = {k: v for k, v in core_arguments(self.name).items() if k != "input_size"}
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            listing = ", ".join(
                k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in allowed.items()
            )
            raise ValueError(
                f"core {self.name!r} has no argument(s) {unknown}; allowed arguments: {listing}"
            )
        try:  # the constructor checks values; a tiny input size keeps this cheap
            make_core(self.name, input_size=1, **kwargs)
        except CoreConfigError as error:
            raise ValueError(str(error)) from None
        return self


class PolicyConfig(_Section):
    """Observation encoder and heads around the core.

    Attributes
    ----------
    encoder_sizes:
        hidden sizes of the MLP applied to the observation before the core (``[]``
        feeds the flat observation to the core directly).
    activation:
        activation of the encoder.
    head_init:
        ``small`` (default): the policy head starts at orthogonal(0.01) weights and a zero bias (a
        near-uniform first policy); ``default``: PyTorch's ``nn.Linear`` initialisation (the FWM
        authors' meta-RL code).
    critic:
        ``shared`` (default): the value head on the core output (the value loss trains the encoder
        and the core too); ``separate``: the value head on a critic MLP of its own
        (``encoder_sizes``) over the flat observation and the core output detached, so only the
        policy loss trains the encoder and the core (:class:`fwmrl.agents.policy.MemoryActorCritic`).
    """

    encoder_sizes: list[int] = Field(default_factory=lambda: [64])
    activation: Literal["tanh", "relu"] = "tanh"
    head_init: Literal["small", "default"] = "small"
    critic: Literal["shared", "separate"] = "shared"

    @field_validator("encoder_sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(s <= 0 for s in sizes):
            raise ValueError(f"encoder sizes must be positive integers, got {sizes}")
        return sizes


class AlgoConfig(_Section):
    """The RL algorithm: synchronous advantage actor-critic (A2C, the default) or recurrent PPO.

    Attributes
    ----------
    name:
        ``a2c`` (:class:`fwmrl.agents.A2C`: one gradient step per rollout) or ``ppo``
        (:class:`fwmrl.agents.PPO`: ``n_epochs`` epochs of clipped-surrogate steps over
        minibatches of whole env sequences). Every other key here applies to both, except the
        PPO keys below, which an ``a2c`` config must leave at their defaults.
    n_steps:
        steps per env per update (truncated BPTT window; the core state is carried across
        updates and detached between them), or ``"episode"``: every update resets all envs, runs
        until each has finished one episode and backpropagates through the whole episode.
    gamma:
        discount factor.
    gae_lambda:
        GAE λ; 1.0 gives n-step (or, with ``bootstrap_truncated: false`` and
        ``n_steps: episode``, Monte-Carlo) returns.
    bootstrap_truncated:
        bootstrap from V(final observation) when an episode is truncated by a
        time limit (a terminated episode never bootstraps).
    ent_coef, vf_coef:
        entropy bonus and value-loss weights.
    max_grad_norm:
        gradient-norm clipping threshold, or ``null`` for none.
    optimizer:
        ``adam`` or ``rmsprop``; ``lr`` and ``eps`` are its learning rate and epsilon.
    normalize_advantage:
        standardise advantages over the valid steps of an update.
    max_episode_steps:
        safety cap on the rollout length in ``n_steps: episode`` mode.
    n_epochs:
        PPO: passes over each rollout.
    num_minibatches:
        PPO: minibatches per epoch; each is ``env.num_envs / num_minibatches``
        whole env sequences (all ``T`` steps of each), so it must divide ``env.num_envs``.
    clip_range:
        PPO: the probability ratio is clipped to ``[1 - clip_range, 1 + clip_range]``.
    clip_range_vf:
        PPO: clip the new value to within this distance of the collection-time
        value (in the value head's units: reward units as in SB3, standardised ones with
        ``normalize_value``), or ``null`` for no value clipping.
    target_kl:
        PPO: stop the update's epochs early at the first minibatch whose approximate
        KL divergence from the collection policy exceeds this (that minibatch takes no step),
        or ``null`` to always run every epoch.
    lr_decay_steps:
        A2C and PPO: the learning rate falls linearly from ``lr`` at env step 0 to 0 at this
        many env steps (each update uses the rate at the env steps done before it; past them it
        stays 0), the linear schedule of SB3's RL Zoo and CleanRL when set to
        ``train.total_steps``; ``null`` (default): a constant ``lr``.
    normalize_value:
        A2C and PPO: the value head predicts returns standardised by their running
        mean and variance (``fwmrl.agents.value_norm.ValueNormalizer``), so the value loss stays
        O(1) whatever the reward scale and does not swamp the policy gradient in the shared trunk.
    baseline:
        ``critic`` (default): the advantage is the return minus the value head's
        prediction for that state, and the value head regresses to the return. ``batch_mean``:
        both use the mean over the batch's envs at each step instead, so the value head only
        learns the batch-mean return of each step and the advantage is the return minus the
        batch-mean prediction. This is what the FWM authors' meta-RL code computes (its value
        loss and advantage broadcast a ``[B]`` return against ``[B, 1]`` values; see
        docs/protocols.md), and it keeps the value gradient from shaping the shared recurrent
        trunk. Meant for Monte-Carlo returns (``n_steps: episode``, ``gae_lambda: 1``).
    """

    name: Literal["a2c", "ppo"] = "a2c"
    n_steps: int | Literal["episode"] = 20
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    bootstrap_truncated: bool = True
    ent_coef: float = Field(0.01, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: float | None = Field(0.5, gt=0.0)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    lr: float = Field(7e-4, gt=0.0)
    eps: float = Field(1e-5, gt=0.0)
    lr_decay_steps: int | None = Field(None, ge=1)
    normalize_advantage: bool = False
    max_episode_steps: int = Field(10_000, ge=1)
    n_epochs: int = Field(4, ge=1)
    num_minibatches: int = Field(4, ge=1)
    clip_range: float = Field(0.2, gt=0.0)
    clip_range_vf: float | None = Field(None, gt=0.0)
    target_kl: float | None = Field(None, gt=0.0)
    normalize_value: bool = False
    baseline: Literal["critic", "batch_mean"] = "critic"

    @field_validator("n_steps", mode="before")
    @classmethod
    def _positive_steps(cls, n: Any) -> int | str:
        if n == "episode" or (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            return n
        raise ValueError(f"must be a positive integer or 'episode', got {n!r}")

    @model_validator(mode="after")
    def _batch_mean_baseline_is_a2c(self) -> AlgoConfig:
        if self.baseline == "batch_mean" and self.name != "a2c":
            raise ValueError(
                f"baseline 'batch_mean' is implemented for name 'a2c' only, got name "
                f"{self.name!r}; use baseline 'critic' (the default) with PPO"
            )
        return self

    @model_validator(mode="after")
    def _ppo_keys_need_ppo(self) -> AlgoConfig:
        if self.name == "ppo":
            return self
        for key in PPO_KEYS:
            default = type(self).model_fields[key].default
            if getattr(self, key) != default:
                raise ValueError(
                    f"{key} is a PPO setting but name is {self.name!r}; set algo.name=ppo, or "
                    f"leave algo.{key} at its default ({default!r})"
                )
        return self


def minibatch_split_problem(num_minibatches: int, num_envs: int) -> str | None:
    """Why PPO's ``num_minibatches`` minibatches of whole env sequences cannot split ``num_envs``
    envs (naming the allowed divisors), or ``None`` when they can."""
    if num_envs % num_minibatches == 0:
        return None
    divisors = [n for n in range(1, num_envs + 1) if num_envs % n == 0]
    listing = ", ".join(map(str, divisors[:12])) + (", ..." if len(divisors) > 12 else "")
    return (
        f"algo.num_minibatches: {num_minibatches} minibatches of whole env sequences cannot split "
        f"env.num_envs={num_envs} envs evenly; allowed: a divisor of {num_envs} ({listing})"
    )


PPO_KEYS = (
    "n_epochs",
    "num_minibatches",
    "clip_range",
    "clip_range_vf",
    "target_kl",
)
"""The ``algo`` keys only :class:`fwmrl.agents.PPO` reads."""


class TrainConfig(_Section):
    """Budget, seeding, checkpoints and evaluation.

    Attributes
    ----------
    total_steps:
        environment steps (summed over envs, reset transitions included) to train for.
    seed:
        seeds the parameters, the action sampling and the envs.
    device:
        torch device (``cpu`` or ``cuda``).
    num_threads:
        ``torch.set_num_threads`` for the run (``null``: torch's default). 1 by
        default: fwmrl's small recurrent models (RL policies, and the supervised/LM trainers at
        CPU sizes) run fastest on one thread, and several threads slow down sharply when the
        machine is shared.
    checkpoint_every:
        write a checkpoint every this many updates (and always at the end).
    eval_every:
        evaluate on the eval env every this many updates (0: only at the end).
    eval_episodes:
        episodes per evaluation.
    progress:
        show a progress bar.
    plot_at_end:
        write the learning curve ``<run>/curves.png`` when training ends.
    gif_at_end:
        write an evaluation episode ``<run>/eval.gif`` when training ends (envs that
        render ``rgb_array``).
    """

    total_steps: int = Field(100_000, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = "cpu"
    num_threads: int | None = Field(1, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    eval_every: int = Field(0, ge=0)
    eval_episodes: int = Field(32, ge=1)
    progress: bool = True
    plot_at_end: bool = True
    gif_at_end: bool = True

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.match(DEVICE_PATTERN, device):
            raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N, mps")
        return device


class LoggingConfig(_Section):
    """Where metrics go (the JSON-lines file in the run directory is always written).

    Attributes
    ----------
    log_every:
        write metrics every this many updates.
    tensorboard:
        write TensorBoard event files under ``<run>/tb``.
    wandb:
        ``disabled`` (default), ``offline`` (local files under ``<run>/wandb``, no account or
        network; its service process adds about 5 s to every run) or ``online``.
    wandb_project:
        the wandb project name.
    """

    log_every: int = Field(10, ge=1)
    tensorboard: bool = True
    wandb: Literal["disabled", "offline", "online"] = "disabled"
    wandb_project: str = "fwmrl"


class RLTask(_Section):
    """``task.kind: rl`` (the default): A2C or PPO (``algo.name``) on ``env``; no other task key.

    Attributes
    ----------
    kind:
        ``rl``.
    """

    kind: Literal["rl"] = "rl"


class _SupervisedTask(_Section):
    """The keys every supervised/LM trainer reads. For these kinds ``train``, ``logging`` and
    ``core`` keep their meaning, ``train.total_steps`` counts optimizer steps,
    ``train.eval_every`` evaluates on the validation stream every this many steps, and ``env``,
    ``policy``, ``algo`` are ignored.

    Attributes
    ----------
    seq_len:
        truncated-BPTT window (tokens per optimizer step and sequence).
    batch_size:
        parallel streams per optimizer step; ``eval_batch_size`` for evaluation.
    embedding_size:
        symbol/word embedding width (the core's input size).
    optimizer, lr, weight_decay, max_grad_norm:
        the optimizer (``nadam`` is the paper's for
        retrieval) and gradient-norm clipping (``null``: none).
    dropout_embedding, dropout_input, dropout_output, dropout_weight:
        regularisers (AWD-LSTM
        style, for the LM above all): drop whole words, drop embedding features (one mask per
        window), drop core outputs, drop the core's LSTM hidden-to-hidden weights (one mask per
        window).
    data_seed:
        seeds data generation and the story shuffle (``train.seed`` seeds the model).
    """

    kind: str  # first in every dump; each kind's model narrows it to its Literal
    seq_len: int = Field(32, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    embedding_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "nadam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    dropout_embedding: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_input: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_output: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_weight: float = Field(0.0, ge=0.0, lt=1.0)
    data_seed: int = Field(0, ge=0, le=MAX_SEED)


class RetrievalTask(_SupervisedTask):
    """``task.kind: retrieval``: associative retrieval (:mod:`fwmrl.tasks.retrieval`), generated in
    memory; plus the keys of every supervised trainer (:class:`_SupervisedTask`).

    Attributes
    ----------
    kind:
        ``retrieval``.
    train_queries, valid_queries, test_queries:
        queries per split (one stream each).
    vocab_size:
        symbols of the embedding and output layer (``null``: the 13 of
        :data:`fwmrl.envs.keyvalue.VOCAB`; 15 reproduces the paper's 15-symbol alphabet size).
    """

    kind: Literal["retrieval"] = "retrieval"
    train_queries: int = Field(100_000, ge=1)
    valid_queries: int = Field(5_000, ge=1)
    test_queries: int = Field(5_000, ge=1)
    vocab_size: int | None = Field(None, ge=13)


class _FileTask(_SupervisedTask):
    """The keys of the trainers that read data files.

    Attributes
    ----------
    data:
        folder of the bAbI task files (``catbabi``: ``en/``, ``en-10k/``, ``en-valid/``,
        ``en-valid-10k/`` of the v1.2 release, or generated) or of a corpus (``lm``:
        ``train/valid/test.txt``, ``ptb.*.txt`` or ``wiki.*.tokens``). ``null``: generated
        data in ``runs/data/generated/<kind>-<parameters>`` (made the first time). A named
        folder without data is an error (a typo is not silently filled).
    generate:
        generate bAbI-style stories or the grammar corpus (:mod:`fwmrl.tasks.corpus`)
        into the named ``data`` folder when it holds none (default: refuse).
    """

    data: str | None = None
    generate: bool = False


class CatbabiTask(_FileTask):
    """``task.kind: catbabi``: bAbI stories read as one token stream (:mod:`fwmrl.tasks.babi`).

    Attributes
    ----------
    kind:
        ``catbabi``.
    tasks:
        bAbI task numbers to read (``qa{N}_*``).
    mode:
        ``qa`` (loss at answers only) or ``lm`` (loss on every token).
    valid_fraction:
        share of each task's training stories held out for validation when there
        is no ``_valid.txt`` file.
    generate_stories:
        training stories per task when generating (test: a tenth).
    reshuffle:
        a new order of the training stories every epoch (drawn from ``train.seed`` and
        the epoch; epoch 0 keeps the ``data_seed`` order).
    """

    kind: Literal["catbabi"] = "catbabi"
    tasks: list[int] = Field(default_factory=lambda: [1, 2, 3, 6, 7])
    mode: Literal["qa", "lm"] = "qa"
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    generate_stories: int = Field(1000, ge=1)
    reshuffle: bool = True

    @field_validator("tasks")
    @classmethod
    def _babi_tasks(cls, tasks: list[int]) -> list[int]:
        if not tasks or any(not 1 <= t <= 20 for t in tasks):
            raise ValueError(f"bAbI task numbers are 1..20 (at least one), got {tasks}")
        return tasks


class LMTask(_FileTask):
    """``task.kind: lm``: word-level language modelling on a corpus (:mod:`fwmrl.tasks.lm`).

    Attributes
    ----------
    kind:
        ``lm``.
    """

    kind: Literal["lm"] = "lm"


TASKS: dict[str, type[_Section]] = {
    "rl": RLTask,
    "retrieval": RetrievalTask,
    "catbabi": CatbabiTask,
    "lm": LMTask,
}
"""``task.kind`` -> the model of its ``task`` section: each trainer lists only its own keys."""

TASK_KINDS = tuple(TASKS)
"""The allowed ``task.kind`` values."""

_LEGACY_TASK_KEYS = frozenset(
    ["kind", "seq_len", "batch_size", "eval_batch_size", "train_queries", "tasks", "mode"]
)
"""Keys every ``task`` section written before the per-kind sections holds (one flat model then
served every kind, and a saved config listed all its keys)."""


def _task_kind(value: Any) -> str:
    """The discriminator of the ``task`` union: ``kind``, ``rl`` when absent."""
    if isinstance(value, dict):
        return value.get("kind", "rl")
    return getattr(value, "kind", "rl")


def _migrate_task(value: Any) -> Any:
    """A flat ``task`` section saved before the per-kind sections (its keys include every one of
    :data:`_LEGACY_TASK_KEYS`) keeps only its kind's keys: the other kinds' keys were ignored."""
    if not isinstance(value, dict) or not set(value) >= _LEGACY_TASK_KEYS:
        return value
    model = TASKS.get(value.get("kind", "rl"))
    return value if model is None else {k: v for k, v in value.items() if k in model.model_fields}


TaskConfig = Annotated[
    Annotated[RLTask, Tag("rl")]
    | Annotated[RetrievalTask, Tag("retrieval")]
    | Annotated[CatbabiTask, Tag("catbabi")]
    | Annotated[LMTask, Tag("lm")],
    Discriminator(_task_kind),
]
"""Which trainer runs and its own keys: one section model per ``task.kind`` (:data:`TASKS`)."""


class Config(_Section):
    """A complete experiment; see the module docstring for the layout."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    core: CoreConfig = Field(default_factory=CoreConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    task: TaskConfig = Field(default_factory=RLTask)

    @field_validator("task", mode="before")
    @classmethod
    def _legacy_task(cls, value: Any) -> Any:
        return _migrate_task(value)

    @model_validator(mode="after")
    def _minibatches_split_the_envs(self) -> Config:
        problem = minibatch_split_problem(self.algo.num_minibatches, self.env.num_envs)
        if self.algo.name == "ppo" and problem is not None:
            raise ValueError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly) that :func:`config_from_dict` turns back into this config."""
        return self.model_dump(mode="json")


_SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
    if name != "task"  # one model per kind: TASKS
}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the model at ``loc`` (a pydantic error location without the bad key)."""
    if not loc:
        return list(Config.model_fields)
    if len(loc) == 1 and loc[0] in _SECTIONS:
        return list(_SECTIONS[loc[0]].model_fields)
    return None


def _task_key_error(kind: str, key: str) -> str:
    """``task.KEY`` is not a key of this kind: its keys, and the kinds that have ``key``."""
    allowed = ", ".join(TASKS[kind].model_fields)
    owners = [k for k, model in TASKS.items() if key in model.model_fields]
    where = f"; {key} is a key of task.kind {' / '.join(owners)}" if owners else ""
    return f"task.{key}: not a key of task.kind {kind}; allowed keys: {allowed}{where}"


def _format_validation_error(error: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    lines = []
    for item in error.errors():
        loc = prefix + tuple(x for x in item["loc"] if not str(x).startswith("function-after"))
        if loc[:1] == ("task",) and item["type"] == "union_tag_invalid":
            tag = item.get("ctx", {}).get("tag")
            lines.append(f"task.kind: unknown kind {tag}; allowed: {', '.join(TASK_KINDS)}")
            continue
        kind = None
        if len(loc) >= 2 and loc[0] == "task" and loc[1] in TASKS:  # the union's tag
            kind, loc = str(loc[1]), (loc[0], *loc[2:])
        key = ".".join(str(x) for x in loc) or "<config>"
        if item["type"] == "extra_forbidden" and kind is not None and len(loc) == 2:
            lines.append(_task_key_error(kind, str(loc[1])))
        elif item["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{key}: unknown key{hint}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] not in ("value_error", "assertion_error") and "input" in item:
                message += f" (got {item['input']!r})"
            lines.append(
                f"{key}: {message}" if loc else message
            )  # a whole-config check names its keys
    return "; ".join(lines)


def _reject_non_finite(data: Any, key: str = "") -> None:
    """Raise :class:`ConfigError` naming the first NaN or infinite number anywhere in ``data``."""
    if isinstance(data, dict):
        for k, v in data.items():
            _reject_non_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            _reject_non_finite(v, f"{key}[{i}]")
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{key}: must be a finite number, got {data}")


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a plain dict into a :class:`Config` (raises :class:`ConfigError`); NaN and infinite
    numbers are refused anywhere, ``env.kwargs`` and core arguments included."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    _reject_non_finite(data)
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error)) from None


def section_from_dict(name: str, data: dict[str, Any]) -> BaseModel:
    """Validate one section of a config alone (``env``, ``core``, ``policy``, ``algo``, ``train``
    or ``logging``), as :func:`config_from_dict` would: the trainers check their own arguments
    with it, and a bad one raises :class:`ConfigError` naming ``section.key``.

    Raises
    ------
    ConfigError
        an unknown section, an unknown key or a bad value (NaN and infinite numbers included).
    """
    if name not in _SECTIONS:
        raise ConfigError(f"{name}: not a config section; allowed: {', '.join(_SECTIONS)}")
    _reject_non_finite(data, name)
    try:
        return _SECTIONS[name].model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, (name,))) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.total_steps=200000"`` -> ``(["train", "total_steps"], 200000)`` (value read as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"bad override {text!r}; write SECTION.KEY=VALUE, e.g. train.total_steps=200000"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy); nested dicts are created where missing."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(path[: i + 1])
                raise ConfigError(f"{prefix}: is a value, not a section; cannot set {text!r}")
            node = child
        node[path[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (raises :class:`ConfigError`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply dotted overrides.

    An override ``core.name=X`` that changes the core drops the file's other core arguments (they
    belong to the old core); core arguments given as overrides are kept.
    """
    return resolve_config({} if path is None else read_yaml(path), overrides)


def resolve_config(data: dict[str, Any], overrides: list[str] | None = None) -> Config:
    """:func:`load_config` on an already-read config dict (e.g. one shipped to a sweep worker)."""
    overrides = list(overrides or [])
    names = [parse_override(o)[1] for o in overrides if parse_override(o)[0] == ["core", "name"]]
    core = data.get("core")
    if names and isinstance(core, dict) and core.get("name", "fwm") != names[-1]:
        data = {**data, "core": {"name": names[-1]}}
    return config_from_dict(apply_overrides(data, overrides))


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically (temporary file, fsync, ``os.replace``): a crash
    leaves the old file or the new one, and a symlink at ``path`` is replaced, its target untouched."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
