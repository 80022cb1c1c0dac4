"""What a function decorated with ``@cache.cached`` captures, and whether it can be key material.

A closure's captured values tell it apart from the other closures of its factory, so they join
its key (``_decorator`` says how). This module finds them, through the ``functools.wraps`` layers
and a bound method's instance, and refuses at decoration time the ones a key cannot hold: values
that are not key material, mutable values, and variables the function reassigns itself.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CellType, CodeType, FunctionType, MethodType
from typing import Any, final

from .errors import ConfigurationError, KeyMaterialError
from .keys import normalize

__all__ = ["Fixed", "captured_by", "check_captured"]

# Opcodes by which a function assigns a variable of its enclosing scope (``nonlocal``).
_ASSIGNS_CAPTURED = frozenset({"STORE_DEREF", "DELETE_DEREF"})


@final
@dataclass(frozen=True, slots=True)
class Fixed:
    """A value held by reference rather than through a closure cell: a bound method's instance."""

    value: object


def captured_by(fn: Callable[..., Any]) -> dict[str, CellType | Fixed]:
    """Every value ``fn`` and the layers it wraps capture, by name, except the layers themselves."""
    return dict(_sources(fn))


def _sources(fn: Callable[..., Any]) -> Iterator[tuple[str, CellType | Fixed]]:
    layers = list(_layers(fn))
    functions = [layer for layer in layers if isinstance(layer, FunctionType)]
    innermost = functions[-1] if functions else None
    chain = {id(layer) for layer in layers}
    seen: set[str] = set()
    for layer in layers:
        if isinstance(layer, MethodType):
            first = next(iter(inspect.signature(layer.__func__).parameters), "self")
            items: list[tuple[str, CellType | Fixed]] = [(first, Fixed(layer.__self__))]
        elif isinstance(layer, FunctionType):
            prefix = "" if layer is innermost else f"{layer.__code__.co_name}."
            items = [
                (prefix + var, cell)
                for var, cell in zip(layer.__code__.co_freevars, layer.__closure__ or (), strict=True)
                if var != "__class__" and not _holds_layer(cell, chain)
            ]
        else:
            raise ConfigurationError(
                f"@cache.cached cannot see what {layer!r} (wrapped by {fn!r}) holds, so it cannot "
                "tell its calls apart; pass key=, a function of the call's arguments returning the "
                "key material"
            )
        for var, source in items:
            if var in seen:
                raise ConfigurationError(
                    f"two functions wrapped by {fn!r} capture {var!r}; pass key=, a function of the "
                    "call's arguments returning the key material"
                )
            seen.add(var)
            yield var, source


def _layers(fn: Callable[..., Any]) -> Iterator[object]:
    """``fn``, then each function it wraps (``__wrapped__``); a bound method, then its function."""
    layer: object = fn
    seen: set[int] = set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        yield layer
        layer = layer.__func__ if isinstance(layer, MethodType) else getattr(layer, "__wrapped__", None)


def _holds_layer(cell: CellType, chain: set[int]) -> bool:
    try:
        return id(cell.cell_contents) in chain
    except ValueError:  # not assigned yet
        return False


def check_captured(fn: Callable[..., Any], qualname: str, captured: dict[str, CellType | Fixed]) -> None:
    """Refuse a captured value that cannot be key material, may change, or is reassigned by ``fn``."""
    if not captured:
        return
    assigned = _assigned_captured(fn)
    for var, source in captured.items():
        fix = (
            f"pass ignore=({var!r},) if it does not change the answer (and name= to give each such "
            "function its own name, if what tells them apart is ignored), or key=, a function of the "
            "call's arguments returning the key material"
        )
        if var in assigned:
            raise ConfigurationError(
                f"@cache.cached: {qualname} assigns the captured variable {var!r} (nonlocal), so its "
                f"key would change with every call; {fix}"
            )
        if isinstance(source, Fixed):
            value = source.value
        else:
            try:
                value = source.cell_contents
            except ValueError:  # not assigned yet: get_or_call checks it at each call
                continue
        try:
            normalize(value, f"captured[{var!r}]")
        except KeyMaterialError as exc:
            raise ConfigurationError(
                f"@cache.cached: {qualname} captures {var!r}, which cannot be part of its key "
                f"({exc}), so closures that differ only in it could not be told apart; {fix}"
            ) from None
        except RecursionError:
            raise ConfigurationError(
                f"@cache.cached: {qualname} captures {var!r}, which refers to itself; {fix}"
            ) from None
        # A bound method's instance is keyed like the ``self`` argument of a method: as it is at
        # each call. A captured list or dict is most often state the function adds to (a log,
        # results so far): as key material it would change the key on every call, silently.
        mutable = None if isinstance(source, Fixed) else _mutable_part(value, var)
        if mutable is not None:
            raise ConfigurationError(
                f"@cache.cached: {qualname} captures {var!r}, and {mutable} can change between "
                "calls (captured values in a key must be immutable: str, numbers, bytes, enums, "
                f"tuples, frozen dataclasses or pydantic models); {fix}"
            )


def _mutable_part(value: object, path: str) -> str | None:
    """The path of a part of ``value`` (key material) that can change in place, or None."""
    from pydantic import BaseModel  # already imported by keys: normalize handles models

    if value is None or isinstance(value, (str, int, float, bytes, enum.Enum)):
        return None
    if isinstance(value, tuple):
        parts = (_mutable_part(item, f"{path}[{i}]") for i, item in enumerate(value))
        return next((part for part in parts if part is not None), None)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not type(value).__dataclass_params__.frozen:  # type: ignore[attr-defined]
            return f"{path} (a dataclass that is not frozen)"
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        parts = (_mutable_part(item, f"{path}.{name}") for name, item in fields)
        return next((part for part in parts if part is not None), None)
    if isinstance(value, BaseModel):
        if not type(value).model_config.get("frozen"):
            return f"{path} (a pydantic model that is not frozen)"
        parts = (_mutable_part(item, f"{path}.{name}") for name, item in value)
        return next((part for part in parts if part is not None), None)
    return f"{path} (a {type(value).__qualname__})"


def _assigned_captured(fn: Callable[..., Any]) -> set[str]:
    """Names of captured variables a layer of ``fn`` (or a function nested in it) assigns."""
    functions = [layer for layer in _layers(fn) if isinstance(layer, FunctionType)]
    assigned: set[str] = set()
    for function in functions:
        prefix = "" if function is functions[-1] else f"{function.__code__.co_name}."
        code = function.__code__
        assigned.update(prefix + var for var in _assigned_free(code, set(code.co_freevars)))
    return assigned


def _assigned_free(code: CodeType, names: set[str]) -> set[str]:
    """Which of ``names`` (free in ``code``) ``code`` or a function nested in it assigns."""
    import dis  # only when decorating closures: not on import

    found = {
        instruction.argval
        for instruction in dis.get_instructions(code)
        if instruction.opname in _ASSIGNS_CAPTURED and instruction.argval in names
    }
    for const in code.co_consts:
        # A nested function assigns the same variable only if it is free there too, not its own.
        if isinstance(const, CodeType) and (inner := names & set(const.co_freevars)):
            found |= _assigned_free(const, inner)
    return found
