"""Compiling a policy into a plan: random nodes with fixed ids, and stages that use them.

The seed contract (node ids, streams, the rule version) is written in `seeds.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from tfx_image_augment.core.ops import OPS, OpDef
from tfx_image_augment.core.ops.base import GEOMETRIC, MIXING
from tfx_image_augment.core.policy import (
    META,
    ONE_OF,
    RANDAUGMENT,
    Op,
    Policy,
    randaugment_candidates,
)
from tfx_image_augment.core.seeds import LAYER_NODE_STRIDE, OP_NODE_STRIDE

RANDAUGMENT_MAX_MAGNITUDE = 30.0


@dataclasses.dataclass(frozen=True)
class Gate:
    """An op applies to an image when every condition holds: u[column] < p, or choice == index."""

    probability_columns: tuple[tuple[int, float], ...] = ()
    choice_columns: tuple[tuple[int, tuple[float, ...], int], ...] = ()  # column, cum. weights, i

    @property
    def always_applies(self) -> bool:
        return not self.choice_columns and all(p >= 1.0 for _, p in self.probability_columns)


@dataclasses.dataclass(frozen=True)
class Instance:
    """One op of the plan: where its draws sit in the per-image table, and when it applies."""

    op: Op
    node_id: int
    gate: Gate
    first_column: int
    num_draws: int

    @property
    def definition(self) -> OpDef:
        return OPS[self.op.name]

    def draws(self, table):
        """This op's own [B, num_draws] uniforms."""
        return table[:, self.first_column : self.first_column + self.num_draws]


@dataclasses.dataclass(frozen=True)
class Stage:
    kind: str  # "flip", "crop", "warp", "pixel" or "mix"
    instances: tuple[Instance, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """A compiled policy: random nodes (id, number of draws) and the stages that use them."""

    policy: Policy
    nodes: tuple[tuple[int, int], ...]
    stages: tuple[Stage, ...]

    @property
    def num_draws(self) -> int:
        return sum(n for _, n in self.nodes)

    @property
    def mixing_ops(self) -> tuple[str, ...]:
        """The names of the mixing ops the plan runs (each needs a partner image)."""
        return tuple(
            inst.op.name for stage in self.stages if stage.kind == "mix" for inst in stage.instances
        )

    @property
    def partner_count(self) -> int:
        """Partner images each image needs: 0 without mixing, 1 for MixUp/CutMix, 3 with
        Mosaic."""
        mixing = [i for s in self.stages if s.kind == "mix" for i in s.instances]
        return max((i.definition.partners for i in mixing), default=0)

    @property
    def tiling_ops(self) -> tuple[str, ...]:
        """The mixing ops the plan runs that tile partner images in (Mosaic): they move boxes."""
        return tuple(n for n in self.mixing_ops if OPS[n].tiles is not None)


def compile_policy(policy: Policy) -> Plan:
    """Turns a policy into stages; consecutive geometric ops share one stage (one warp)."""
    nodes: list[tuple[int, int]] = []
    column = 0

    def add_node(node_id: int, draws: int) -> int:
        nonlocal column
        nodes.append((node_id, draws))
        start, column = column, column + draws
        return start

    def instance(op: Op, node_id: int, gate: Gate) -> Instance:
        param_draws = OPS[op.name].num_draws(op)
        start = add_node(node_id, 1 + param_draws)
        gate = dataclasses.replace(
            gate, probability_columns=gate.probability_columns + ((start, op["p"]),)
        )
        return Instance(op, node_id, gate, start + 1, param_draws)

    def choice(node_id: int, p: float, weights: Sequence[float]) -> Callable[[int], Gate]:
        """The gate of option j of a choice node: the node applies (p) and picked j."""
        start = add_node(node_id, 2)
        total = float(sum(weights))
        cumulative = tuple(sum(weights[: i + 1]) / total for i in range(len(weights)))
        return lambda j: Gate(((start, p),), ((start + 1, cumulative, j),))

    sequence: list[Instance] = []
    for index, op in enumerate(policy.ops):
        node_id = (index + 1) * OP_NODE_STRIDE
        if op.kind != META:
            sequence.append(instance(op, node_id, Gate()))
            continue
        if op.name == ONE_OF:
            gate_of = choice(node_id, op["p"], op["weights"])
            children = [
                instance(child, node_id + j + 1, gate_of(j)) for j, child in enumerate(op.children)
            ]
            # Exactly one child applies per image, so their order among themselves is free:
            # geometric children first lets them join a preceding warp.
            sequence.extend(sorted(children, key=lambda c: c.op.kind != GEOMETRIC))
            continue
        if op.name == RANDAUGMENT:
            level = op["magnitude"] / RANDAUGMENT_MAX_MAGNITUDE
            candidates, layers = randaugment_candidates(level), op["num_ops"]
        else:  # trivialaugment: one op at full strength
            candidates, layers = randaugment_candidates(1.0), 1
        # RandAugment and TrivialAugment include "identity" as one of the draws: the last slot.
        weights = [1.0] * (len(candidates) + 1)
        drawn: list[Instance] = []
        for layer in range(layers):
            layer_node = node_id + LAYER_NODE_STRIDE * layer
            gate_of = choice(layer_node, op["p"], weights)
            drawn.extend(
                instance(candidate, layer_node + j + 1, gate_of(j))
                for j, candidate in enumerate(candidates)
            )
        # Documented: the drawn geometric ops form one warp before the drawn photometric ops.
        sequence.extend(sorted(drawn, key=lambda c: c.op.kind != GEOMETRIC))

    stages: list[Stage] = []
    for item in sequence:
        if item.op.kind == GEOMETRIC and stages and stages[-1].kind == "geometric":
            stages[-1] = Stage("geometric", stages[-1].instances + (item,))
        else:
            kind = {GEOMETRIC: "geometric", MIXING: "mix"}.get(item.op.kind, "pixel")
            stages.append(Stage(kind, (item,)))
    return Plan(policy, tuple(nodes), tuple(_specialise(s) for s in stages))


def _specialise(stage: Stage) -> Stage:
    """Picks the cheapest way to run a geometric stage: flips alone, one crop alone, or a warp."""
    if stage.kind != "geometric":
        return stage
    definitions = [i.definition for i in stage.instances]
    if all(d.flip_axis is not None for d in definitions):
        return Stage("flip", stage.instances)
    if len(definitions) == 1 and definitions[0].crop_box is not None:
        return Stage("crop", stage.instances)
    return Stage("warp", stage.instances)
