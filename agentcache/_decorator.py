"""``@cache.cached``: route an async function's calls through ``get_or_call``.

What identifies a call (its key material)::

    {"fn": "<module>.<qualname>", "args": {<bound arguments, defaults applied>}}
    + "captured": {<name>: <value>}   only when the function captures values (a closure)

- ``f(1)``, ``f(1, 2)`` (2 being the default) and ``f(x=1)`` share one entry; a changed default or
  a renamed function is a new key. A function defined at module level captures nothing, so its key
  is exactly the first line.
- A closure is told apart from its siblings by what it captured: ``make("gpt")`` and
  ``make("claude")`` below are two keys, never one::

      def make(model):
          @cache.cached
          async def ask(prompt: str) -> str: ...  # captures ``model``
          return ask

  Captured values are read at each call (a reassigned variable is a new key) and must be
  immutable key material: str, numbers, bytes, enums, tuples, frozen dataclasses and pydantic
  models of those. Anything else is refused when the function is decorated, with the fix in the
  message: a client object or a lock (not key material), a list or dict (most often state the
  function adds to, a log or results so far, which would change the key on every call), and a
  variable the function reassigns itself (``nonlocal calls; calls += 1``). Decorators applied *under*
  ``@cache.cached`` (retry, logging: ``functools.wraps`` layers) are looked through, and what each
  layer captures counts too; a wrapper's variables are named ``"<wrapper>.<name>"``. ``__class__``
  (set by ``super()``) is left out: the qualified name already names the class.
- A bound method (``cache.cached(agent.run)``) captures its instance under the name of its first
  parameter (``"self"``), keyed as it is at each call, like the ``self`` argument of a method
  decorated in its class body (which binds like a method). ``ignore=("self",)`` leaves either out
  when it does not change the answer.
- Module globals are not in the key: there is one of each per process, shared by every call and
  every closure, like the function's code, which the key does not hold either. What changes
  between deployments (a prompt template, a model name) belongs in the arguments, a captured
  value, ``name=`` or the namespace.

The options, smallest first:

- ``ignore=("client", "calls")``: parameters or captured variables that do not change the answer;
- ``name="summarise/v2"``: the name that replaces ``"<module>.<qualname>"`` (keep entries across a
  rename, or give each closure its own name when what tells them apart is ignored);
- ``key=lambda prompt: {"model": model, "prompt": prompt}``: a plain function of the call's
  arguments that returns the key material itself; then nothing else is read (neither the
  arguments nor the captured values), and ``ignore`` does not apply.

The return annotation becomes the ``value_type``, so a function annotated ``-> Summary`` gets a
``Summary`` back on a hit. The decorated function is a ``CachedFunction``: awaited like the function,
plus ``.key(...)`` (the stored key of a call) and ``.invalidate(...)`` (delete that call's entry).
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from types import CellType, MethodType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, final, overload

from ._captured import Fixed, captured_by, check_captured
from ._options import parse_ttl
from .errors import ConfigurationError
from .keys import validate_namespace

if TYPE_CHECKING:
    from .cache import AgentCache

__all__ = ["CachedFunction", "cached_function"]

P = ParamSpec("P")
R = TypeVar("R")
_Self = TypeVar("_Self")
_Rest = ParamSpec("_Rest")

# Annotations that the plain-JSON codec already restores exactly: no TypeAdapter needed.
_PLAIN = {str, int, bool, typing.Any}


@final
@dataclass(frozen=True, slots=True)
class _Plan:
    """What decoration decided: how a call becomes key material, and the options of the lookup."""

    cache: AgentCache
    fn: Callable[..., Awaitable[Any]]
    name: str
    signature: inspect.Signature
    ignore: frozenset[str]
    key: Callable[..., object] | None
    fixed: dict[str, object]  # a bound method's instance, under its parameter's name
    cells: tuple[tuple[str, CellType], ...]  # captured variables still read at each call
    ttl: float | timedelta | None
    namespace: str | None
    value_type: Any

    def material(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """The key material of one call."""
        if self.key is not None:
            return {"fn": self.name, "key": self.key(*args, **kwargs)}
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        material: dict[str, object] = {
            "fn": self.name,
            "args": {k: v for k, v in bound.arguments.items() if k not in self.ignore},
        }
        if self.cells or self.fixed:
            captured = dict(self.fixed)
            for name, cell in self.cells:
                try:
                    value = cell.cell_contents
                except ValueError:  # not assigned yet: it cannot have shaped this call
                    continue
                # The function calling itself through its own (decorated) name is not a value.
                if not (isinstance(value, CachedFunction) and value._plan is self):
                    captured[name] = value
            if captured:
                material["captured"] = captured
        return material


@final
class CachedFunction(Generic[P, R]):
    """An async function whose calls go through a cache; also ``.key(...)`` and ``.invalidate(...)``.

    Awaiting ``f(*args)`` returns the cached answer or calls the function; ``f.key(*args)`` is the
    stored key that call uses and ``await f.invalidate(*args)`` deletes its entry. Defined in a
    class body it binds like a method (``agent.run.key("q")`` includes ``agent``).
    """

    __wrapped__: Callable[P, Awaitable[R]]

    def __init__(self, plan: _Plan, bound_to: tuple[object, ...] = ()) -> None:
        self._plan = plan
        self._bound_to = bound_to  # the instance, when reached through one (a method)
        # What introspection (inspect.signature, __wrapped__) sees: the function, bound like a method.
        wrapped = MethodType(plan.fn, bound_to[-1]) if bound_to else plan.fn
        functools.update_wrapper(self, wrapped, updated=())
        if sys.version_info >= (3, 12):  # inspect.iscoroutinefunction() is true of it, as of the function
            inspect.markcoroutinefunction(self)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        plan, every = self._plan, self._bound_to + args
        fn = plan.fn

        async def call(_material: object) -> R:
            result: R = await fn(*every, **kwargs)
            return result

        answer: R = await plan.cache.get_or_call(
            plan.material(every, kwargs),
            call,
            ttl=plan.ttl,
            namespace=plan.namespace,
            value_type=plan.value_type,
        )
        return answer

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The stored key this call uses (``"<namespace>:v1:<sha256 hex>"``)."""
        plan = self._plan
        return plan.cache.key(plan.material(self._bound_to + args, kwargs), plan.namespace)

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete this call's entry; True if there was one."""
        plan = self._plan
        return await plan.cache.delete(plan.material(self._bound_to + args, kwargs), namespace=plan.namespace)

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> CachedFunction[P, R]: ...

    @overload
    def __get__(
        self: CachedFunction[Concatenate[_Self, _Rest], R], instance: _Self, owner: type[Any] | None = None
    ) -> CachedFunction[_Rest, R]: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> CachedFunction[Any, R]:
        if instance is None:
            return self
        return CachedFunction(self._plan, (*self._bound_to, instance))

    def __repr__(self) -> str:
        bound = f" bound to {self._bound_to[-1]!r}" if self._bound_to else ""
        return f"<CachedFunction {self._plan.name}{bound}>"


def cached_function(
    cache: AgentCache,
    fn: Callable[P, Awaitable[R]],
    *,
    ttl: float | timedelta | None = None,
    namespace: str | None = None,
    ignore: tuple[str, ...] = (),
    key: Callable[..., object] | None = None,
    name: str | None = None,
) -> CachedFunction[P, R]:
    """Wrap ``fn`` (an ``async def`` or a bound async method) so its results are cached in ``cache``."""
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"@cache.cached decorates async functions; {fn!r} is not one (use 'async def')"
        )
    parse_ttl(ttl)  # a bad ttl fails here, not at the first call
    if namespace is not None:
        validate_namespace(namespace)
    if isinstance(ignore, str):  # ignore="client" would ignore "c", "l", "i"...
        raise ConfigurationError(f"ignore takes a tuple of names: ignore=({ignore!r},)")
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):
        raise ConfigurationError(
            f"@cache.cached needs a function or a bound method to name its keys, not {fn!r}; "
            "decorate the function itself (fix arguments with defaults), or pass name= and key="
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigurationError(f"name must be a non-empty str, not {name!r}")
    signature = inspect.signature(fn)
    fixed: dict[str, object] = {}
    cells: tuple[tuple[str, CellType], ...] = ()
    if key is not None:
        if not callable(key) or inspect.iscoroutinefunction(key):
            raise ConfigurationError(
                f"key must be a plain function of the call's arguments returning key material, not {key!r}"
            )
        if ignore:
            raise ConfigurationError(
                "ignore and key do not combine: the key function alone chooses what goes into the key"
            )
    else:
        captured = captured_by(fn)
        unknown = set(ignore) - set(signature.parameters) - set(captured)
        if unknown:
            raise ConfigurationError(
                f"ignore names no parameter or captured variable of {qualname}: {sorted(unknown)}"
            )
        captured = {n: source for n, source in captured.items() if n not in ignore}
        check_captured(fn, qualname, captured)
        fixed = {n: source.value for n, source in captured.items() if isinstance(source, Fixed)}
        cells = tuple((n, source) for n, source in captured.items() if isinstance(source, CellType))
    plan = _Plan(
        cache=cache,
        fn=fn,
        name=name if name is not None else f"{fn.__module__}.{qualname}",
        signature=signature,
        ignore=frozenset(ignore),
        key=key,
        fixed=fixed,
        cells=cells,
        ttl=ttl,
        namespace=namespace,
        value_type=_value_type(fn),
    )
    return CachedFunction(plan)


def _value_type(fn: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to plain JSON values
        return None
    annotation = hints.get("return")
    if annotation is None or annotation in _PLAIN:
        return None
    return annotation
