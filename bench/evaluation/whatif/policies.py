"""Policies to evaluate: how likely each is to pick each of a logged decision's candidates.

A policy sees what the router logged: each candidate's features (predicted success, load, expected
duration, cost, relationship, preference). The router's policy with other settings rescores them
with the router's own scoring (`weighted_score`) and draws among its top k by softmax, as the router
does.

Specs on the command line:
  router[:key=value,...]   today's router settings, with the given ones changed (e.g. temperature=0.1,load=0.5,top_k=2)
  greedy[:key=value,...]   the best score, always (top_k=1)
  random                   any candidate alike
  best-single              the one agent that would have done best alone on this log
  agent:ID                 always that agent (the best-scored candidate when it is not one)
  file:PATH, or PATH.toml / PATH.json   a policy described in a file (format in docs/learning.md)
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.evaluation.whatif.decisions import LoggedDecision
from services.router.logic import Weights, softmax, weighted_score

BEST_SINGLE = "best-single"
TUNABLE = ("success", "load", "duration", "cost", "relationship", "preference", "temperature", "top_k")


class PolicyError(ValueError):
    pass


class Policy(Protocol):
    name: str

    def probabilities(self, decision: LoggedDecision) -> np.ndarray:
        """One probability per logged candidate, in the logged order."""


@dataclass(frozen=True)
class RouterPolicy:
    name: str
    weights: Weights

    def scores(self, decision: LoggedDecision) -> list[float]:
        w = self.weights
        return [
            weighted_score(
                w,
                decision.predicted(c),
                c.features.get("load", 0.0),
                c.features.get("expected_duration_s", 0.0),
                c.features.get("cost", 0.0),
                c.features.get("relationship", 0.0),
                c.features.get("preference", 0.0),
            )
            for c in decision.candidates
        ]

    def probabilities(self, decision: LoggedDecision) -> np.ndarray:
        scores = self.scores(decision)
        # Best score first, then agent id, as the router ranks.
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], decision.candidates[i].agent_id))
        top = ranked[: max(1, self.weights.top_k)]
        out = np.zeros(len(scores))
        out[top] = softmax([scores[i] for i in top], self.weights.temperature)
        return out


@dataclass(frozen=True)
class RandomPolicy:
    name: str = "random"

    def probabilities(self, decision: LoggedDecision) -> np.ndarray:
        return np.full(len(decision.candidates), 1.0 / len(decision.candidates))


@dataclass(frozen=True)
class AgentPolicy:
    name: str
    agent_id: str
    otherwise: RouterPolicy

    def probabilities(self, decision: LoggedDecision) -> np.ndarray:
        ids = [c.agent_id for c in decision.candidates]
        if self.agent_id not in ids:
            return self.otherwise.probabilities(decision)
        out = np.zeros(len(ids))
        out[ids.index(self.agent_id)] = 1.0
        return out


class PolicyFile(BaseModel):
    """A policy described in a TOML or JSON file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["router", "greedy", "random", "agent"] = "router"
    agent: str | None = None
    temperature: float | None = Field(default=None, gt=0.0)
    top_k: int | None = Field(default=None, ge=1)
    weights: dict[Literal["success", "load", "duration", "cost", "relationship", "preference"], float] = {}


def parse(spec: str, today: Weights) -> Policy | str:
    """The policy a spec names; `best-single` stays a name until the log says which agent it is."""
    kind, _, rest = spec.partition(":")
    if spec == BEST_SINGLE:
        return BEST_SINGLE
    if spec == "random":
        return RandomPolicy()
    if kind == "router":
        return RouterPolicy(spec, _changed(today, rest, spec))
    if kind == "greedy":
        return RouterPolicy(spec, replace(_changed(today, rest, spec), top_k=1))
    if kind == "agent" and rest:
        return AgentPolicy(spec, rest, RouterPolicy("greedy", replace(today, top_k=1)))
    if kind == "file" or spec.endswith((".toml", ".json")):
        return from_file(Path(rest if kind == "file" else spec), today)
    raise PolicyError(
        f"unknown policy {spec!r}: use router[:k=v,...], greedy[:k=v,...], random, {BEST_SINGLE}, agent:ID or file:PATH"
    )


def _changed(weights: Weights, settings: str, spec: str) -> Weights:
    changes = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key not in TUNABLE:
            raise PolicyError(f"policy {spec!r}: {key!r} is not a setting; choose from {', '.join(TUNABLE)}")
        try:
            changes[key] = int(value) if key == "top_k" else float(value)
        except ValueError:
            raise PolicyError(f"policy {spec!r}: {key}={value!r} is not a number") from None
    if changes.get("temperature", 1.0) <= 0 or changes.get("top_k", 1) < 1:
        raise PolicyError(f"policy {spec!r}: temperature must be above 0 and top_k at least 1")
    return replace(weights, **changes)


def from_file(path: Path, today: Weights) -> Policy:
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        described = PolicyFile.model_validate(raw)
    except OSError as error:
        raise PolicyError(f"cannot read policy file {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise PolicyError(f"policy file {path} is not valid {path.suffix[1:].upper() or 'JSON'}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in error.errors())
        raise PolicyError(f"policy file {path}: {problems}") from None
    weights = replace(
        today,
        **described.weights,
        **{k: v for k, v in (("temperature", described.temperature), ("top_k", described.top_k)) if v is not None},
    )
    if described.kind == "random":
        return RandomPolicy(described.name)
    if described.kind == "agent":
        if not described.agent:
            raise PolicyError(f"policy file {path}: kind 'agent' needs `agent`")
        return AgentPolicy(described.name, described.agent, RouterPolicy("greedy", replace(weights, top_k=1)))
    return RouterPolicy(described.name, replace(weights, top_k=1) if described.kind == "greedy" else weights)
