"""Keys: canonical, stable across processes, and loud about material they cannot key."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import subprocess
import sys

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, AgentCacheError, KeyMaterialError
from agentcache.keys import canonical_json, digest, normalize, stored_key

# Pinned so that a silent change of the key rules (which would orphan every stored entry, or
# worse, serve one answer for another question) fails here first. Change KEY_VERSION with them.
GOLDEN = [
    ("hello", "default:v1:802d842853d60faca1effe68a5208ea0153ba74755adf21ac2bbf1ec6fa6e8f0"),
    (
        {"model": "gpt-4o", "prompt": "hi", "temperature": 0.2},
        "default:v1:a47c9e0e231332f4de01ac58003e65af6fba35f511aac6c0edf7efd6ba0c4e32",
    ),
    (
        [1, 2.5, None, True, "x"],
        "default:v1:9242d8d6990cfa9a936ccb576c583a628107491425449a1315ac2ba5ec79e07d",
    ),
]


class Role(enum.Enum):
    USER = "user"


class Message(BaseModel):
    role: str
    content: str


@dataclasses.dataclass
class Settings:
    temperature: float
    seed: int | None = None


def test_golden_keys_never_change() -> None:
    cache = AgentCache("memory://")
    assert [cache.key(material) for material, _ in GOLDEN] == [key for _, key in GOLDEN]


def test_dict_order_never_matters() -> None:
    assert digest({"a": 1, "b": {"x": 1, "y": 2}}) == digest({"b": {"y": 2, "x": 1}, "a": 1})


def test_every_leaf_matters() -> None:
    base = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0}
    variants = [
        {**base, "model": "gpt-4o-mini"},
        {**base, "temperature": 0.7},
        {**base, "messages": [{"role": "user", "content": "hi!"}]},
        {**base, "seed": 1},
    ]
    keys = {digest(v) for v in [base, *variants]}
    assert len(keys) == 5


def test_equal_numbers_share_a_key_but_bool_does_not() -> None:
    assert digest({"t": 1.0}) == digest({"t": 1})
    assert digest({"t": -0.0}) == digest({"t": 0})
    assert digest({"t": True}) != digest({"t": 1})


def test_tuples_are_lists_and_bytes_are_tagged() -> None:
    assert digest([1, (2, 3)]) == digest([1, [2, 3]])
    assert digest(b"hi") != digest("hi")
    # A user dict that looks like the bytes tag cannot collide with real bytes.
    assert digest({"$bytes": "aGk="}) != digest(b"hi")


def test_a_top_level_prompt_and_the_same_text_as_an_enum_share_a_key() -> None:
    class Prompt(str, enum.Enum):
        HELLO = "hello"

    assert digest(Prompt.HELLO) == digest("hello")
    assert digest(Role.USER) == digest("user")


def test_models_and_dataclasses_are_keyed_by_their_fields() -> None:
    assert digest(Message(role="user", content="hi")) == digest({"role": "user", "content": "hi"})
    assert digest(Settings(0.5)) == digest({"temperature": 0.5, "seed": None})
    assert normalize({"s": Settings(1.0, 7)}) == {"s": {"temperature": 1, "seed": 7}}


def test_canonical_json_is_compact_sorted_ascii() -> None:
    assert canonical_json({"b": "é", "a": [1, 2]}) == '{"a":[1,2],"b":"\\u00e9"}'


@pytest.mark.parametrize(
    ("material", "path", "named"),
    [
        ({"tools": [1, 2, object()]}, "key['tools'][2]", "object"),
        ({"t": float("nan")}, "key['t']", "nan"),
        ({"t": [float("inf")]}, "key['t'][0]", "inf"),
        ({1: "x"}, "key", "dict key of type int"),
        ({"s": {1, 2}}, "key['s']", "sorted list"),
    ],
)
def test_unsupported_material_names_the_type_and_path(material: object, path: str, named: str) -> None:
    with pytest.raises(KeyMaterialError) as info:
        digest(material)
    assert path in str(info.value)
    assert named in str(info.value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, AgentCacheError)


async def test_bad_material_raises_before_anything_is_called() -> None:
    called = False

    async def call(_key: object) -> str:
        nonlocal called
        called = True
        return "x"

    async with AgentCache("memory://") as cache:
        with pytest.raises(TypeError, match=r"key\['when'\]"):
            await cache.get_or_call({"when": object()}, call)
    assert not called


def test_keys_are_stable_across_processes_and_hash_seeds() -> None:
    material = {"model": "m", "tags": ["a", "b"], "opts": {"z": 1, "a": [1.5, None]}}
    script = (
        "import json,sys; from agentcache.keys import stored_key; "
        "print(stored_key(json.loads(sys.argv[1]), 'ns'))"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(material)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout.strip())
    assert outputs == {stored_key(material, "ns")}


def test_the_digest_is_sha256_of_the_documented_canonical_form() -> None:
    import hashlib

    text = b'{"model":"gpt-4o","prompt":"hi","temperature":0.2}'
    assert digest({"temperature": 0.2, "prompt": "hi", "model": "gpt-4o"}) == (
        hashlib.sha256(b"j\x00" + text).hexdigest()
    )
    assert digest("hello") == hashlib.sha256(b"s\x00hello").hexdigest()
