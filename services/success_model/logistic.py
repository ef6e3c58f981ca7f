"""P(success | task, agent, capability): a River logistic regression over the agent's own Beta
posterior, the capability, the agent, its labels and the task's features.

Its weights are published as plain JSON; `LinearPredictor` rebuilds a predictor from them after
validation, so a consumer never unpickles anything.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Mapping

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from river import linear_model, optim

from services.success_model.beta import Beta
from services.success_model.features import Running, Scaling, agent_features, observe, skill_features, task_features_of

FORMAT = "logistic/1"
MAX_WEIGHTS = 100_000


class SuccessModel:
    def __init__(self, learning_rate: float = 0.01) -> None:
        # AdaGrad: rare capabilities keep larger steps than common ones. No intercept: the capability
        # terms hold the base rates, and a shared intercept would chase each task's difficulty.
        self.regression = linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate), intercept_lr=0.0)
        # Untrained, the model says what the Beta posterior says; learning only corrects it.
        # River has no public way to seed one weight, hence the private dict.
        self.regression._weights["skill_logit"] = 1.0
        self.scaling: Scaling = {}
        self.trained_on = 0

    def probability(self, x: Mapping[str, float]) -> float:
        return self.regression.predict_proba_one(x)[True]

    def learn(self, x: Mapping[str, float], success: bool, capability: str, task_features: Mapping[str, float]) -> None:
        self.regression.learn_one(x, bool(success))
        observe(self.scaling, capability, task_features)
        self.trained_on += 1

    def parameters(self) -> dict[str, JsonValue]:
        return {
            "format": FORMAT,
            "intercept": float(self.regression.intercept),
            "weights": {k: float(v) for k, v in sorted(self.regression.weights.items())},
            "scaling": {
                capability: {name: [r.count, r.mean, r.m2] for name, r in sorted(moments.items())}
                for capability, moments in sorted(self.scaling.items())
            },
            "trained_on": self.trained_on,
        }


FeatureName = Annotated[str, Field(min_length=1, max_length=400)]
Moments = tuple[Annotated[int, Field(ge=0)], float, Annotated[float, Field(ge=0.0)]]


class ModelParameters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    format: Literal["logistic/1"]
    intercept: float
    weights: Annotated[dict[FeatureName, float], Field(max_length=MAX_WEIGHTS)]
    scaling: dict[FeatureName, dict[FeatureName, Moments]] = {}
    trained_on: Annotated[int, Field(ge=0)]


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class LinearPredictor:
    """The published model, rebuilt from JSON; predicts exactly as the model that published it."""

    def __init__(self, parameters: ModelParameters) -> None:
        self.intercept = parameters.intercept
        self.weights = dict(parameters.weights)
        self.scaling: Scaling = {
            capability: {name: Running(*moments) for name, moments in by_name.items()}
            for capability, by_name in parameters.scaling.items()
        }
        self.trained_on = parameters.trained_on
        self._agent_terms: dict[tuple, float] = {}  # the weights never change

    @classmethod
    def from_parameters(cls, raw: Mapping[str, object] | str | bytes) -> LinearPredictor:
        # Validated as the JSON it travels as: strict types, no string that merely looks like a number.
        document = raw if isinstance(raw, (str, bytes)) else orjson.dumps(raw)
        return cls(ModelParameters.model_validate_json(document))

    def probability(self, x: Mapping[str, float]) -> float:
        return sigmoid(self.intercept + self.linear(x))

    def linear(self, x: Mapping[str, float]) -> float:
        return sum(self.weights.get(name, 0.0) * value for name, value in x.items())

    # `probability(features(...))` in parts, for scoring many agents on one task: the same sum
    # in another order, so equal up to rounding.
    def task_term(self, capability: str, task_features: Mapping[str, float]) -> float:
        return self.intercept + self.linear(task_features_of(capability, task_features, self.scaling))

    def agent_term(
        self, agent_id: str, labels: tuple[tuple[str, str], ...], capability: str = "", version: str | None = None
    ) -> float:
        key = (agent_id, labels, capability, version)
        if (term := self._agent_terms.get(key)) is None:
            term = self._agent_terms[key] = self.linear(agent_features(agent_id, dict(labels), capability, version))
        return term

    def probability_from(self, task_term: float, agent_term: float, skill: Beta, attempts: int) -> float:
        return sigmoid(task_term + agent_term + self.skill_term(skill, attempts))

    def skill_term(self, skill: Beta, attempts: int) -> float:
        """The part the agent's record on the capability adds: it changes only with that record."""
        return self.linear(skill_features(skill, attempts))
