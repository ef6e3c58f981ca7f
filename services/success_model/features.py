"""The feature vector of one (task, agent) pair, built the same way by the live model and by a
predictor rebuilt from published parameters.

Feature names are what the published model's weights are keyed by, and what the insights read
models take apart, so each kind has its own prefix and each name inside one is escaped:

    skill_logit, evidence               the agent's own record on the capability
    capability:<capability>             the capability's base rate
    agent:<agent id>                    the agent, across capabilities
    label:<key>=<value>                 an agent label, shared by every agent carrying it
    version:<capability>=<version>      a declared capability version, shared likewise
    task:<capability>:<task feature>    a task feature, standardized per capability
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from services.success_model.beta import Beta

EVIDENCE_SCALE = 5.0  # log1p(attempts) / 5 is about 1 at 150 attempts
Z_LIMIT = 5.0  # one extreme prompt should not swing a weight


def part(name: str) -> str:
    """A name as one part of a feature name. ':' and '=' separate parts, so they are escaped, as
    is '%' itself: an agent called "label:x" or a capability called "agent" cannot pose as another
    feature, and ordinary names read as they are."""
    return name.replace("%", "%25").replace(":", "%3A").replace("=", "%3D")


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def squash(value: float) -> float:
    # Sizes and counts spread over orders of magnitude; their logarithm is what matters.
    return math.copysign(math.log1p(abs(value)), value)


@dataclass
class Running:
    """Mean and variance of one task feature (Welford), to put it on a common scale."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def standardize(self, value: float) -> float:
        if self.count < 2 or self.m2 <= 0.0:
            return 0.0
        z = (value - self.mean) / math.sqrt(self.m2 / (self.count - 1))
        return max(-Z_LIMIT, min(Z_LIMIT, z))


Scaling = dict[str, dict[str, Running]]  # capability -> task feature -> running moments


def features(
    capability: str,
    agent_id: str,
    labels: Mapping[str, str],
    skill: Beta,
    attempts: int,
    task_features: Mapping[str, float],
    scaling: Scaling,
    version: str | None = None,
) -> dict[str, float]:
    """`version` is the agent's declared version of this capability, if it declared one."""
    return {
        **skill_features(skill, attempts),
        f"capability:{part(capability)}": 1.0,
        **agent_features(agent_id, labels, capability, version),
        **standardized(capability, task_features, scaling),
    }


# The parts below are what `features` joins. A router scoring many agents for one task computes the
# task's part once and each agent's identity part once per model, and only the skill part per candidate.


def skill_features(skill: Beta, attempts: int) -> dict[str, float]:
    return {"skill_logit": logit(skill.mean), "evidence": math.log1p(attempts) / EVIDENCE_SCALE}


def agent_features(
    agent_id: str, labels: Mapping[str, str], capability: str = "", version: str | None = None
) -> dict[str, float]:
    x = {f"agent:{part(agent_id)}": 1.0}
    for key, value in sorted(labels.items()):
        x[f"label:{part(key)}={part(value)}"] = 1.0
    if version:
        # Shared by every agent on that version: whether an upgrade goes with success is learned across the fleet.
        x[f"version:{part(capability)}={part(version)}"] = 1.0
    return x


def task_features_of(capability: str, task_features: Mapping[str, float], scaling: Scaling) -> dict[str, float]:
    return {f"capability:{part(capability)}": 1.0, **standardized(capability, task_features, scaling)}


def standardized(capability: str, task_features: Mapping[str, float], scaling: Scaling) -> dict[str, float]:
    x = {}
    moments = scaling.get(capability, {})
    for name, value in sorted(task_features.items()):
        # Per capability: a long prompt means something different in code than in multiple choice.
        if name in moments:
            x[f"task:{part(capability)}:{part(name)}"] = moments[name].standardize(squash(value))
    return x


def observe(scaling: Scaling, capability: str, task_features: Mapping[str, float]) -> None:
    moments = scaling.setdefault(capability, {})
    for name, value in sorted(task_features.items()):
        moments.setdefault(name, Running()).add(squash(value))
