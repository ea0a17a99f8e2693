"""Scalar math nodes: drive parameters-by-wire, counters and sweeps without writing code."""

from __future__ import annotations

import math as _m
from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import Enum, Float

OPS = ("add", "subtract", "multiply", "divide", "min", "max", "power", "modulo")


def binary(op: str, a: float, b: float) -> float:
    """Pure: the math behind math.binary, so tests call it without an executor."""
    if op == "add":
        return a + b
    if op == "subtract":
        return a - b
    if op == "multiply":
        return a * b
    if op == "divide":
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return a / b
    if op == "min":
        return min(a, b)
    if op == "max":
        return max(a, b)
    if op == "power":
        return _m.pow(a, b)
    if op == "modulo":
        if b == 0:
            raise ZeroDivisionError("modulo by zero")
        return _m.fmod(a, b)
    raise ValueError(f"unknown op {op!r}")


class Binary(Node):
    """Combine two numbers. Unconnected inputs use the `a` and `b` parameters."""

    type_id = "math.binary"
    title = "Math"
    category = "math"
    inputs = (
        Input("x", Float, "first operand (overrides a)", optional=True),
        Input("y", Float, "second operand (overrides b)", optional=True),
    )
    outputs = (Output("value", Float),)
    params = (
        Param("op", Enum, "add", "operation", choices=OPS),
        Param("a", Float, 0.0, "first operand when x is not connected"),
        Param("b", Float, 0.0, "second operand when y is not connected"),
    )

    def run(
        self,
        ctx: NodeContext,
        op: str,
        a: float,
        b: float,
        x: float | None = None,
        y: float | None = None,
    ) -> dict[str, Any]:
        lhs = a if x is None else x
        rhs = b if y is None else y
        try:
            out = binary(op, lhs, rhs)
        except ZeroDivisionError as exc:
            raise ctx.error(str(exc), port="y", fix="feed a non-zero divisor") from None
        if not _m.isfinite(out):
            raise ctx.error(
                f"{op}({lhs}, {rhs}) is not finite", port="value", fix="keep operands in range"
            )
        return {"value": out}


class Scale(Node):
    """Multiply a number by a factor and add an offset: value * factor + offset."""

    type_id = "math.scale"
    title = "Scale"
    category = "math"
    inputs = (Input("value", Float),)
    outputs = (Output("value", Float),)
    params = (
        Param("factor", Float, 1.0, "multiplier"),
        Param("offset", Float, 0.0, "added after multiplying"),
    )

    def run(self, ctx: NodeContext, value: float, factor: float, offset: float) -> dict[str, Any]:
        return {"value": value * factor + offset}


class Sum(Node):
    """Add any number of inputs: connect as many wires as you like."""

    type_id = "math.sum"
    title = "Sum"
    category = "math"
    inputs = (Input("values", Float, "numbers to add", multi=True),)
    outputs = (Output("value", Float),)

    def run(self, ctx: NodeContext, values: list[float]) -> dict[str, Any]:
        return {"value": float(sum(values))}
