"""@cache.cached: keys from bound arguments with defaults, value_type from the return annotation."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, ConfigurationError
from agentcache._decorator import CachedFunction

P = ParamSpec("P")
R = TypeVar("R")


class Summary(BaseModel):
    text: str
    model: str


async def test_equivalent_calls_share_one_entry_and_typed_results_round_trip(db_url: str) -> None:
    calls = 0
    cache = AgentCache(db_url)

    @cache.cached(ttl=60, ignore=("calls",))
    async def summarise(text: str, *, model: str = "gpt-4o") -> Summary:
        nonlocal calls
        calls += 1
        return Summary(text=text[:5], model=model)

    async with cache:
        first = await summarise("hello world")
        assert await summarise("hello world", model="gpt-4o") == first
        assert await summarise(text="hello world") == first
        assert calls == 1
        await summarise("hello world", model="gpt-4o-mini")
        assert calls == 2
    async with AgentCache(db_url) as fresh:
        rebound = fresh.cached(summarise.__wrapped__, ignore=("calls",))
        hit = await rebound("hello world")
    assert calls == 2
    assert isinstance(hit, Summary)
    assert hit == first


async def test_bare_decorator_and_ignored_arguments() -> None:
    cache = AgentCache("memory://")
    calls = 0

    class Client:
        pass

    @cache.cached(ignore=("calls",))
    async def plain(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 2

    @cache.cached(ignore=("client", "calls"))
    async def with_client(client: Client, prompt: str) -> str:
        nonlocal calls
        calls += 1
        return prompt.upper()

    async with cache:
        assert await plain(2) == 4
        assert await plain(2) == 4
        assert await with_client(Client(), "hi") == "HI"
        assert await with_client(Client(), "hi") == "HI"
    assert calls == 2


async def test_unkeyable_arguments_name_the_parameter() -> None:
    cache = AgentCache("memory://")

    @cache.cached
    async def f(client: object) -> str:
        return "x"

    async with cache:
        with pytest.raises(TypeError, match=r"key\[.args.\]\[.client.\]"):
            await f(object())


def test_sync_functions_and_unknown_ignores_are_refused() -> None:
    cache = AgentCache("memory://")
    with pytest.raises(ConfigurationError, match="async def"):

        @cache.cached
        def sync(x: int) -> int:
            return x

    with pytest.raises(ConfigurationError, match="nope"):

        @cache.cached(ignore=("nope",))
        async def f(x: int) -> int:
            return x


# -- what tells two functions apart ----------------------------------------------------------


async def translate(text: str, target: str = "fr") -> str:
    return f"{target}:{text}"


def test_a_module_level_function_keeps_the_key_it_always_had() -> None:
    # Entries recorded by earlier versions stay hits: a function without a closure is keyed by
    # its name and bound arguments only, exactly as before.
    cached = AgentCache("memory://").cached(translate)
    expected = "default:v1:9cbb6e4ca8fd231fe16bc7605ed85abfa78184e7f4f6b2e2a7a303b98a612cc8"
    assert cached.key("hello") == expected
    assert cached.key("hello", "fr") == cached.key(text="hello", target="fr") == expected


async def test_closures_of_one_factory_never_serve_each_other() -> None:
    cache = AgentCache("memory://")

    def make(model: str) -> CachedFunction[[str], str]:
        @cache.cached
        async def ask(prompt: str) -> str:
            return f"{model} says {prompt}"

        return ask

    gpt, claude = make("gpt"), make("claude")
    async with cache:
        assert await gpt("hi") == "gpt says hi"
        assert await claude("hi") == "claude says hi"
        assert cache.stats.hits == 0
        assert await make("gpt")("hi") == "gpt says hi"  # a new closure over the same value: a hit
        assert cache.stats.hits == 1
    assert gpt.key("hi") != claude.key("hi")


async def test_a_reassigned_captured_variable_is_a_new_key() -> None:
    cache = AgentCache("memory://")
    model = "gpt"

    @cache.cached
    async def ask(prompt: str) -> str:
        return f"{model} says {prompt}"

    async with cache:
        assert await ask("hi") == "gpt says hi"
        model = "claude"
        assert await ask("hi") == "claude says hi"


def test_a_captured_value_that_is_not_key_material_is_refused_naming_it_and_the_fixes() -> None:
    cache = AgentCache("memory://")

    def make(client: object) -> object:
        async def ask(prompt: str) -> str:
            return f"{client} {prompt}"

        return cache.cached(ask)

    with pytest.raises(ConfigurationError, match="captures 'client'") as refused:
        make(object())
    message = str(refused.value)
    assert "ignore=('client',)" in message
    assert "key=" in message
    assert "name=" in message


def test_a_captured_variable_the_function_assigns_is_refused() -> None:
    # ``nonlocal calls; calls += 1`` would change the key on every call: a cache that never hits.
    cache = AgentCache("memory://")
    calls = 0

    with pytest.raises(ConfigurationError, match="assigns the captured variable 'calls'"):

        @cache.cached
        async def ask(prompt: str) -> str:
            nonlocal calls
            calls += 1
            return prompt

    def assigned_in_a_nested_function() -> None:
        @cache.cached
        async def ask(prompt: str) -> str:
            def count() -> None:
                nonlocal calls
                calls += 1

            count()
            return prompt

    with pytest.raises(ConfigurationError, match="'calls'"):
        assigned_in_a_nested_function()


async def test_ignore_and_name_tell_closures_apart_when_a_captured_value_cannot() -> None:
    cache = AgentCache("memory://")
    upstream: list[str] = []

    class Client:
        def __init__(self, base_url: str) -> None:
            self.base_url = base_url

    def make(client: Client) -> CachedFunction[[str], str]:
        @cache.cached(ignore=("client", "upstream"), name=f"ask@{client.base_url}")
        async def ask(prompt: str) -> str:
            upstream.append(client.base_url)
            return f"{client.base_url}: {prompt}"

        return ask

    local, hosted = make(Client("http://localhost")), make(Client("https://api.example"))
    async with cache:
        assert await local("hi") == "http://localhost: hi"
        assert await hosted("hi") == "https://api.example: hi"
        assert await make(Client("http://localhost"))("hi") == "http://localhost: hi"
    assert upstream == ["http://localhost", "https://api.example"]


async def test_a_key_function_builds_the_key_material_from_the_arguments() -> None:
    cache = AgentCache("memory://")
    upstream: list[str] = []

    class Client:
        def __init__(self, model: str) -> None:
            self.model = model

    def make(client: Client) -> CachedFunction[[str, bool], str]:
        @cache.cached(key=lambda prompt, verbose=False: {"model": client.model, "prompt": prompt})
        async def ask(prompt: str, verbose: bool = False) -> str:
            upstream.append(prompt)
            return f"{client.model}: {prompt}"

        return ask

    gpt = make(Client("gpt"))
    async with cache:
        assert await gpt("hi") == "gpt: hi"
        assert await gpt("hi", True) == "gpt: hi"  # verbose is not in the key
        assert await make(Client("claude"))("hi") == "claude: hi"
    assert upstream == ["hi", "hi"]
    material = {"fn": f"{__name__}.{gpt.__qualname__}", "key": {"model": "gpt", "prompt": "hi"}}
    assert gpt.key("hi") == cache.key(material)


def test_ignore_names_parameters_or_captured_variables_and_nothing_else() -> None:
    cache = AgentCache("memory://")
    lock = object()

    @cache.cached(ignore=("lock", "verbose"))
    async def ask(prompt: str, verbose: bool = False) -> str:
        assert lock is not None
        return prompt

    with pytest.raises(ConfigurationError, match="nope"):
        cache.cached(ask.__wrapped__, ignore=("lock", "nope"))
    with pytest.raises(ConfigurationError, match=r"ignore=\('lock',\)"):
        cache.cached(ask.__wrapped__, ignore="lock")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ignore and key"):
        cache.cached(ask.__wrapped__, ignore=("lock",), key=lambda prompt: prompt)


async def test_a_closure_calling_itself_by_its_decorated_name_works() -> None:
    cache = AgentCache("memory://")

    def make(step: int) -> CachedFunction[[int], int]:
        @cache.cached
        async def total(n: int) -> int:
            return 0 if n <= 0 else n * step + await total(n - 1)

        return total

    async with cache:
        assert await make(1)(3) == 6
        assert await make(2)(3) == 12


# -- decorators under @cache.cached, methods ---------------------------------------------------


def logged(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return await fn(*args, **kwargs)

    return wrapper


def scaled(factor: object) -> Callable[[Callable[P, Awaitable[int]]], Callable[P, Awaitable[int]]]:
    def decorate(fn: Callable[P, Awaitable[int]]) -> Callable[P, Awaitable[int]]:
        @functools.wraps(fn)
        async def scaling(*args: P.args, **kwargs: P.kwargs) -> int:
            return await fn(*args, **kwargs) * factor  # type: ignore[operator]

        return scaling

    return decorate


async def test_decorators_under_cached_are_looked_through_and_what_they_capture_counts() -> None:
    cache = AgentCache("memory://")

    async def double(x: int) -> int:
        return 2 * x

    def make(model: str) -> CachedFunction[[str], str]:
        @cache.cached
        @logged
        async def ask(prompt: str) -> str:
            return f"{model}: {prompt}"

        return ask

    async with cache:
        # The wrapper holds only the function it wraps: the inner closure's values still count.
        assert await make("gpt")("hi") == "gpt: hi"
        assert await make("claude")("hi") == "claude: hi"
        # A wrapper's own captured values count too, named after the wrapper.
        assert await cache.cached(scaled(3)(double))(1) == 6
        assert await cache.cached(scaled(5)(double))(1) == 10
    with pytest.raises(ConfigurationError, match=r"captures 'scaling\.factor'"):
        cache.cached(scaled(object())(double))
    # A module-level function under a wrapper that captures nothing else keeps its key.
    plain = AgentCache("memory://").cached(logged(translate))
    assert plain.key("hello") == AgentCache("memory://").cached(translate).key("hello")


agents = AgentCache("memory://")


@dataclass
class Agent:
    model: str

    @agents.cached
    async def answer(self, question: str) -> str:
        return f"{self.model}: {question}"

    async def run(self, question: str) -> str:
        return f"{self.model} ran {question}"


class Opaque:
    async def run(self, question: str) -> str:
        return question


async def test_methods_bind_like_methods_and_key_on_their_instance() -> None:
    agents.reset_stats()
    gpt, claude = Agent("gpt"), Agent("claude")
    async with agents:
        assert await gpt.answer("q") == "gpt: q"
        assert await claude.answer("q") == "claude: q"
        assert await Agent("gpt").answer("q") == "gpt: q"  # an equal instance: a hit
        assert agents.stats.hits == 1
        assert gpt.answer.key("q") == Agent.answer.key(gpt, "q") != claude.answer.key("q")
        assert await gpt.answer.invalidate("q") is True
        assert await gpt.answer.invalidate("q") is False
    assert list(inspect.signature(gpt.answer).parameters) == ["question"]


async def test_a_bound_method_is_keyed_by_its_instance_or_refused() -> None:
    cache = AgentCache("memory://")
    async with cache:
        assert await cache.cached(Agent("gpt").run)("q") == "gpt ran q"
        assert await cache.cached(Agent("claude").run)("q") == "claude ran q"
    with pytest.raises(ConfigurationError, match=r"captures 'self'.*ignore=\('self',\)"):
        cache.cached(Opaque().run)
    assert await cache.cached(Opaque().run, ignore=("self",))("q") == "q"


async def test_a_method_using_super_is_keyed_by_its_arguments() -> None:
    cache = AgentCache("memory://")

    class Base:
        async def answer(self, question: str) -> str:
            return question.upper()

    class Child(Base):
        @cache.cached(ignore=("self",))
        async def answer(self, question: str) -> str:
            return await super().answer(question) + "!"

    async with cache:
        assert await Child().answer("q") == "Q!"
        assert await Child().answer("q") == "Q!"
        assert cache.stats.hits == 1


# -- .key and .invalidate ----------------------------------------------------------------------


async def test_key_is_the_stored_key_and_invalidate_deletes_that_entry() -> None:
    cache = AgentCache("memory://", namespace="app")
    calls: list[str] = []

    @cache.cached(namespace="other", ignore=("calls",))  # a log the function adds to
    async def shout(text: str, times: int = 1) -> str:
        calls.append(text)
        return text.upper() * times

    async with cache:
        await shout("hi")
        stored = shout.key("hi")
        assert stored.startswith("other:v1:")
        assert shout.key("hi", 1) == shout.key(text="hi") == stored
        material = {"fn": f"{__name__}.{shout.__qualname__}", "args": {"text": "hi", "times": 1}}
        assert cache.key(material, "other") == stored
        assert await cache.get(material, namespace="other") == "HI"
        assert await shout.invalidate("hi", times=1) is True
        assert await shout.invalidate("hi") is False
        await shout("hi")
    assert calls == ["hi", "hi"]
