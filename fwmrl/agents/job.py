"""The RL job: :class:`A2C` or :class:`PPO` as a :class:`fwmrl.jobloop.Job`, and a run's policy.

:class:`RLJob` builds the trainer a config describes (``algo.name``), checks the evaluation env
before anything is written, restores checkpoints (saying when a resume cannot be bit-identical),
guards every update against NaN/inf, evaluates on the eval env and draws the curves (with the env's
reference returns) and an evaluation GIF. :func:`fwmrl.jobs.train_run` runs it for ``task.kind:
rl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from fwmrl import rundir
from fwmrl.agents.a2c import A2C, build_policy, make_vector_env
from fwmrl.agents.evaluation import evaluate, record_gif, reference_returns
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.agents.ppo import PPO
from fwmrl.config import Config
from fwmrl.envs import EnvStateError, describe_env
from fwmrl.errors import ConfigError, NonFiniteLossError, RunError
from fwmrl.jobloop import say, warn_on_error, write_curves


def build_agent(
    config: Config,
    env: gym.vector.VectorEnv | None = None,
    policy: MemoryActorCritic | None = None,
    trainer: type[A2C] | None = None,
) -> A2C:
    """The trainer a config describes: :class:`PPO` for ``algo.name: ppo``, else :class:`A2C`,
    built from the config's sections (the trainers never see the config itself).

    Parameters
    ----------
    config:
        the experiment: ``env``, ``core``, ``policy``, ``algo`` and ``train.seed`` /
        ``train.device`` are used.
    env:
        a vector env to train on instead of the one ``config.env`` describes.
    policy:
        a :class:`MemoryActorCritic` to train instead of the one ``config.core`` and
        ``config.policy`` describe.
    trainer:
        the class to build (a subclass of the one ``algo.name`` names, e.g.
        :class:`fwmrl.A2C`); default: that class.
    """
    default = PPO if config.algo.name == "ppo" else A2C
    if trainer is None:
        trainer = default
    elif not issubclass(trainer, default) or trainer.algorithm != default.algorithm:
        raise ConfigError(
            f"algo.name: {config.algo.name} is trained by {default.__name__} or a subclass, "
            f"not {trainer.__name__}"
        )
    env_args: dict[str, Any] = {}
    if env is None:
        env_args = {
            "n_envs": config.env.num_envs,
            "env_kwargs": config.env.kwargs,
            "vectorization": config.env.vectorization,
        }
    elif env.num_envs != config.env.num_envs:
        raise ConfigError(
            f"env: a given vector env has {env.num_envs} envs, env.num_envs says "
            f"{config.env.num_envs}"
        )
    policy_args: dict[str, Any] = {}
    if policy is None:
        policy_args = {
            "core_kwargs": config.core.kwargs,
            "policy_kwargs": config.policy.model_dump(),
        }
    return trainer(
        config.core.name if policy is None else policy,
        config.env.id if env is None else env,
        **env_args,
        **policy_args,
        seed=config.train.seed,
        device=config.train.device,
        **config.algo.model_dump(exclude={"name"}),
    )


def config_data(agent: A2C) -> dict[str, Any]:
    """The config (as a plain dict) that :func:`build_agent` builds ``agent`` again from: its
    :attr:`A2C.init_arguments` in the config's sections. An env given as an object is recorded
    by its ``spec.id`` (``custom`` without one), its number of envs as ``env.num_envs``.

    Raises
    ------
    ConfigError
        the agent's policy was given as an object (no config describes it).
    """
    arguments = dict(agent.init_arguments)
    if arguments.pop("policy") is None:
        raise ConfigError(
            "policy: a trainer built around your own MemoryActorCritic cannot be rebuilt from a "
            "config; save policy.state_dict() and build the policy again"
        )
    env_id = arguments.pop("env")
    if env_id is None:  # a vector env's spec, or that of the env a SyncVectorEnv wraps
        spec = getattr(agent.env, "spec", None) or getattr(
            next(iter(getattr(agent.env, "envs", [])), None), "spec", None
        )
        env_id = spec.id if spec is not None else "custom"
    return {
        "env": {
            "id": env_id,
            "num_envs": arguments.pop("n_envs"),
            "kwargs": arguments.pop("env_kwargs"),
            "vectorization": arguments.pop("vectorization"),
        },
        "core": {"name": agent.init_arguments["policy"], **arguments.pop("core_kwargs")},
        "policy": arguments.pop("policy_kwargs"),
        "train": {"seed": arguments.pop("seed"), "device": arguments.pop("device")},
        "algo": {"name": agent.algorithm, **arguments},
    }


def policy_from_config(config: Config, env: gym.vector.VectorEnv | gym.Env) -> MemoryActorCritic:
    """The :class:`MemoryActorCritic` that ``config.core`` and ``config.policy`` describe, for the
    spaces of ``env`` (:func:`fwmrl.agents.a2c.build_policy`)."""
    return build_policy(config.core.name, env, config.core.kwargs, config.policy.model_dump())


def eval_env_kwargs(config: Config) -> dict[str, Any]:
    """The eval env's keyword arguments: ``env.kwargs`` updated with ``env.eval_kwargs``."""
    return {**config.env.kwargs, **config.env.eval_kwargs}


def make_eval_env(config: Config, num_envs: int, **extra: Any) -> gym.vector.VectorEnv:
    """The evaluation vector env of a config: :func:`eval_env_kwargs` updated with ``extra``,
    stepped as ``env.vectorization`` says (a bad id or argument: :class:`ConfigError`)."""
    kwargs = {**eval_env_kwargs(config), **extra}
    return make_vector_env(config.env.id, num_envs, kwargs, config.env.vectorization)


def evaluate_from_config(
    policy: MemoryActorCritic,
    config: Config,
    episodes: int = 32,
    seed: int = 12345,
    deterministic: bool = False,
) -> dict[str, float]:
    """:func:`fwmrl.agents.evaluation.evaluate` on a config's eval env (:func:`eval_env_kwargs`,
    ``env.vectorization``, at most ``env.num_envs`` envs at once, episodes cut at
    ``algo.max_episode_steps``)."""
    return evaluate(
        policy,
        config.env.id,
        eval_env_kwargs(config),
        vectorization=config.env.vectorization,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        num_envs=config.env.num_envs,
        max_steps=config.algo.max_episode_steps,
    )


def references_from_config(
    config: Config, episodes: int = 32, seed: int = 0, eval_env: bool = False
) -> dict[str, float]:
    """:func:`fwmrl.agents.evaluation.reference_returns` of a config's training env
    (``env.kwargs``; with ``eval_env=True`` its eval env), episodes cut at
    ``algo.max_episode_steps``."""
    kwargs = eval_env_kwargs(config) if eval_env else dict(config.env.kwargs)
    return reference_returns(
        config.env.id,
        kwargs,
        episodes=episodes,
        seed=seed,
        max_steps=config.algo.max_episode_steps,
    )


def run_references(
    run_dir: str | Path, config: Config | None = None, episodes: int = 100
) -> dict[str, float]:
    """The env's ``random`` (and, where it has one, ``oracle``) returns for a run: ``episodes``
    episodes of the training env (``env.kwargs``) from seed ``train.seed``, cached in
    ``<run>/references.json`` (:data:`fwmrl.plots.REFERENCES`), so that curves, ``eval.json`` and
    ``fwmrl eval`` quote the same numbers."""
    import json

    from fwmrl.atomic import atomic_write_text
    from fwmrl.plots import REFERENCES, read_references

    refs = read_references(run_dir)
    if refs:
        return refs
    config = config or rundir.load_run_config(run_dir)
    refs = references_from_config(config, episodes=episodes, seed=config.train.seed)
    atomic_write_text(Path(run_dir) / REFERENCES, json.dumps(refs, indent=2) + "\n")
    return refs


def check_eval_env(config: Config) -> None:
    """Build the evaluation env once (``env.kwargs`` + ``env.eval_kwargs``) so that a bad
    ``env.eval_kwargs`` is found before training, not after the whole budget."""
    if not config.env.eval_kwargs:
        return
    in_process = config.env.model_copy(update={"vectorization": "auto"})
    try:
        make_eval_env(config.model_copy(update={"env": in_process}), 1).close()
    except ConfigError as error:
        raise ConfigError(f"env.eval_kwargs: {error}") from None


class RLJob:
    """A2C or PPO (``algo.name``) driven by :func:`fwmrl.jobloop.run_job`.

    Parameters
    ----------
    config:
        the experiment; the trainer is :func:`build_agent`'s (PPO for ``algo.name: ppo``,
        else A2C).

    Attributes
    ----------
    agent:
        the trainer.
    """

    steps_unit = "env steps"
    headline = "episode_return_mean"

    def __init__(self, config: Config) -> None:
        from fwmrl import distributed

        self.config = config
        self.agent = build_agent(config)
        self.rank, self.world = self.agent.rank, self.agent.world
        self.evaluation_label = f"{config.train.eval_episodes} episodes"
        self._last_steps = self.agent.env_steps
        if distributed.is_main():
            try:
                check_eval_env(config)
            except BaseException:
                self.agent.close()
                raise

    @property
    def update(self) -> int:
        """Updates (rollouts) done."""
        return self.agent.update

    @property
    def steps(self) -> int:
        """Env steps done over all ranks."""
        return self.agent.env_steps

    def restore(self, data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """:meth:`A2C.load_state_dict`, every failure one :class:`RunError` line naming the file;
        a resume whose envs could not be restored is reset with a seed and says so."""
        path = run_dir / rundir.CHECKPOINT
        try:
            restored = self.agent.load_state_dict(data)
        except EnvStateError as error:
            raise RunError(f"{path}: the saved env state does not fit this env: {error}") from None
        except KeyError as error:
            raise RunError(f"{path}: not a complete A2C checkpoint (no entry {error})") from None
        except (ValueError, RuntimeError, TypeError, AttributeError) as error:
            raise RunError(
                f"{path}: does not fit this config: {rundir.first_line(error)}"
            ) from None
        self._last_steps = self.agent.env_steps
        seed = None if restored else int(data.get("env_reset_seed", self.agent.env_reset_seed()))
        if not restored and self.rank == 0:
            why = (
                "the checkpoint (format 1) holds a pickled env, which is never loaded"
                if "env_pickle" in data
                else f"the state of {describe_env(self.agent.env)} cannot be saved"
            )
            rundir.note(
                f"{why}; the envs were reset with seed {seed}: this resume is not "
                "bit-identical to an uninterrupted run"
            )
        return {"env_restored": restored, "env_reset_seed": seed}

    def write_files(self, run_dir: Path, resume: bool) -> None:
        """Nothing beyond the loop's files."""

    def _guard(self, outputs: bool = False) -> None:
        problem = self.agent.nonfinite(outputs)
        if problem is not None:
            raise NonFiniteLossError(problem)

    def learn_update(self) -> dict[str, float]:
        """One rollout and its update, then the NaN/inf guard on the parameters."""
        try:
            metrics = self.agent.learn_update()
        except NonFiniteLossError:
            raise
        except RuntimeError:  # e.g. torch.multinomial on NaN probabilities: say why
            self._guard(outputs=True)
            raise
        self._guard()
        return metrics

    def record(self, seconds: float) -> dict[str, Any]:
        """``steps_per_s`` since the last record, ``episodes`` and the training episode stats."""
        steps, self._last_steps = self.agent.env_steps - self._last_steps, self.agent.env_steps
        return {
            "steps_per_s": steps / max(seconds, 1e-9),
            "episodes": self.agent.episodes,
            **self.agent.episode_stats(),
        }

    def _evaluate(self) -> dict[str, float]:
        train = self.config.train
        return evaluate_from_config(
            self.agent.policy, self.config, train.eval_episodes, seed=train.seed + 10_000
        )

    def evaluate(self) -> tuple[dict[str, float], bool]:
        """``train.eval_episodes`` episodes on the eval env (``eval_*`` fields); never "improves"."""
        return {f"eval_{k}": v for k, v in self._evaluate().items()}, False

    def check_finite(self) -> None:
        """The parameters, observations and the policy's outputs on them must be finite."""
        self._guard(outputs=True)

    def state_dict(self) -> dict[str, Any]:
        """:meth:`A2C.state_dict` and the run's ``config`` (as a plain dict)."""
        return {**self.agent.state_dict(), "config": self.config.to_dict()}

    def final_evaluation(self, last_record: dict[str, Any]) -> dict[str, Any]:
        """The last record's evaluation (a resumed finished run logs none: evaluated now)."""
        evaluation = {k[5:]: v for k, v in last_record.items() if k.startswith("eval_")}
        return evaluation or self._evaluate()

    def summary(self) -> dict[str, Any]:
        """``env_steps`` and the training episode stats."""
        return {"env_steps": self.agent.env_steps, **self.agent.episode_stats()}

    def pictures(self, run_dir: Path) -> dict[str, str]:
        """``curves.png`` with the env's reference returns, and an ``eval.gif`` episode."""
        train, out = self.config.train, {}
        if train.plot_at_end:
            say(train.progress, "drawing curves.png (and the env's reference returns)")
            with warn_on_error("references.json"):
                run_references(run_dir, self.config)
            out.update(write_curves(run_dir, self.config))
        if train.gif_at_end:
            say(train.progress, "recording eval.gif (one episode)")
            with warn_on_error("eval.gif"):
                record_gif(
                    self.agent.policy,
                    self.config.env.id,
                    run_dir / "eval.gif",
                    eval_env_kwargs(self.config),
                    seed=train.seed,
                )
                out["gif"] = str(run_dir / "eval.gif")
        return out

    def close(self) -> None:
        """Close the envs."""
        self.agent.close()


def load_policy(run_dir: str | Path, config: Config | None = None) -> MemoryActorCritic:
    """The :class:`~fwmrl.agents.policy.MemoryActorCritic` of a run's last checkpoint (CPU, eval)."""
    config = config or rundir.load_run_config(run_dir)
    data = rundir.load_checkpoint(Path(run_dir) / rundir.CHECKPOINT)
    in_process = config.env.model_copy(update={"vectorization": "auto"})  # no worker for spaces
    env = make_eval_env(config.model_copy(update={"env": in_process}), 1)
    try:
        policy = policy_from_config(config, env)
    finally:
        env.close()
    policy.load_state_dict(data["policy"])
    return policy.eval()
