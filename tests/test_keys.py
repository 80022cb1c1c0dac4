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
from agentcache.keys import Key, canonical_json, digest, digest_of_canonical, normalize, stored_key

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


# Text at its edges, and big ints: computed on the rules before strings holding surrogate pairs and
# ints over 4,300 digits got forms of their own. Ordinary input must keep its key forever.
GOLDEN_ORDINARY = [
    ("", "28a3d6d537e5d5090d33c042ad97db2081e47f9cc713e983ebb94121172153c8"),
    ("\u00e9", "0996bd57395b5bdb774965d3e9d3e6ff0b0b31baf3cfd712f9478cf6752bf88e"),
    ("e\u0301", "3ecd33ebde9a36627980f922e8bf5d59b968db86280c45a44d52bc40ab0e345b"),
    ("\U0001f600", "5d9186a1f5a27a613bae5b09ec0105cb9c6ca214214b2e3bea648d319c681465"),
    (
        "\ud83d\ude00",
        "a32329c95bc1152733dd203de2fbfcf865476fdd86978edb17e49a3ad56e6b1e",
    ),  # a prompt: its bytes
    ("\ud800", "c03ef8b421c3c0b6e0a5fe481e49f4dfa789875a816c47f6c714eb94a6695687"),
    (
        "\udc00\ud800",
        "f5fe6ad6b385a1946f56fbff4c4e93b24781864577c636279b63ce62cf890163",
    ),  # low, high: no pair
    ("a\x00b", "4e65bb87eb0b7b2e0e7edc7cf298b21555c5a43941f9f54a4f64300f9a39b602"),
    ({"q": "\U0001f600"}, "93c96d7865e90fa5412ed760e4e7e6e7abc48e34b44225c94e6060f96424ca16"),
    ({"q": "\u00e9"}, "25b582b2f8f8bce706cac7bed7d328dadec9023e8c8ff3aae55546a3cb05d4e2"),
    (
        {"messages": [{"role": "user", "content": "Bonjour, \u00e7a va ? \U0001f600"}], "model": "m"},
        "f37aec20bcc4f881eb9f4914195524ced5915ce313dec12c4e8a4e9b1320016e",
    ),
    ({"p": "\ud800"}, "f9611bb81cad1650933db35b2788560f1108fdca5f8022531221a17fdd7e6257"),
    ({"p": "\udc00\ud800"}, "0d4c868cbd7c85fa7740ef3c7a2a7ee1089554b20bef71b3d291d0d9478d537c"),
    ({"p": "\ud800x\udc00"}, "7778d2c4f4d3558d92d7473d54342c4c2a0cc5ce846b4d84be8d1685caf2e74d"),
    ({"\ud800": 1}, "c7f05ae143dd8582140bbe8b2c14c0b3f2074506b6d919551505ebc15cafbc12"),
    (["\udfff", "\ud83d"], "633cdde8e8b95fdbb9008c528019aa0b76ceb62eccd5c761ed54e500b6a8856f"),
    ({"n": 10**4299}, "aa208c586648eebf18cff6d02ffe1f8b70b84a046cbf980b7c25f720b3e8764d"),  # 4,300 digits
    ({"n": -(10**4299)}, "d553c63c81e0e0fb96111e68a7f5ee68b408f940160527a2924ff490ac89c43e"),
    ([2**64, -1, 0], "00ca92bb2879dda6722df4b739f5f16e17f82c921b1204b51cfffeb3ba1043cf"),
    ({"b": b"\x00\xff"}, "809e93db82b1a604ac5c17fe8fad637dbf8c90b2d44de26abb5bf282e0f0d8b3"),
    ({"$x": 1}, "6bc94b1215aeec6e9e43bbe33d0c08b454ef6ac42585da80ae35fde0f5d09456"),
    ({"f": 1.0, "g": -0.0, "h": 0.1}, "513aafcd95eec79c515219e00a38fc41aacab523d95010550892244ad4e5a70d"),
]
# Pinned when they got forms of their own: a surrogate pair inside a structure (it shared the key
# of the character it encodes) and ints over 4,300 digits (they raised ValueError).
GOLDEN_TAGGED = [
    ({"p": "\ud83d\ude00"}, "a82bd17dc9f36d8da72fe456b974a1a41e822d968274d42408704acea4eacbe8"),
    ({"\ud83d\ude00": 1}, "fff4923d48f44eb9cbe9b80953570f3ad7d2560f4240e7b2c14eeee6482be1f2"),
    (["a\ud83d\ude00b"], "b2b6588e166233188013bceeb427770626391d7c9af1b54ddb54d038b868f857"),
    ({"n": 10**4300}, "799a9947ab4c58de0bd1e8164bbc83cf8668a1bfa15f750d2f25fe84e82abbe2"),
    ({"n": -(10**4300)}, "14f5470e22719e0304dfaf3e44affdc48ee16c0d495654f504348a4dbca36a78"),
    (10**5000, "d34557c63aee75a2e7a4a15e99b31ed092c9fce1dcf9cc5f9a38699a2887fd42"),
]


def test_golden_keys_never_change() -> None:
    cache = AgentCache("memory://")
    assert [cache.key(material) for material, _ in GOLDEN] == [key for _, key in GOLDEN]
    for material, digest_hex in GOLDEN_ORDINARY + GOLDEN_TAGGED:
        assert cache.key(material) == f"default:v1:{digest_hex}", ascii(material)[:60]


def test_golden_sample_keys_and_stored_material_never_change() -> None:
    hello = Key.of("hello", "default")
    assert hello.sample(1).stored.endswith("851cf0365bbe5ee1943ae4f56cbb59f8f122a7efb7e5fa0d49706f9e244dfce6")
    emoji = Key.of({"q": "\U0001f600"}, "default")
    assert emoji.sample(1).stored.endswith("34e79c727d4c2cdac2b023b61c23f44927b1b5126541f25648053525b3cea8d6")
    assert emoji.canonical == '{"q":"\\ud83d\\ude00"}'
    assert Key.of("\ud800", "default").canonical == '"\\ud800"'


def test_a_surrogate_pair_and_the_character_it_encodes_never_share_a_key() -> None:
    pair, char = "\ud83d\ude00", "\U0001f600"
    for wrap in (
        lambda t: t,
        lambda t: {"p": t},
        lambda t: {t: 1},
        lambda t: [f"a{t}b"],
        lambda t: [{"x": [t]}],
    ):
        assert digest(wrap(pair)) != digest(wrap(char))
    pair_key, char_key = Key.of(pair, "default"), Key.of(char, "default")
    assert pair_key.sample(1).stored != char_key.sample(1).stored  # sample slots too
    assert pair_key.canonical != char_key.canonical  # and the material stored for inspection


def test_a_str_subclass_or_enum_holding_a_surrogate_pair_keys_like_the_str() -> None:
    class Text(str):
        pass

    class Prompt(str, enum.Enum):
        PAIR = "\ud83d\ude00"

    for same in (Text("\ud83d\ude00"), Prompt.PAIR):
        key = Key.of(same, "default")
        assert key.stored == Key.of("\ud83d\ude00", "default").stored
        assert key.canonical == Key.of("\ud83d\ude00", "default").canonical
        assert digest_of_canonical(key.canonical) == key.stored.split(":")[2]


def test_the_stored_material_of_any_key_gives_back_its_digest() -> None:
    for material, _ in GOLDEN_ORDINARY + GOLDEN_TAGGED:
        key = Key.of(material, "default")
        assert digest_of_canonical(key.canonical) == key.stored.split(":")[2], ascii(material)[:60]


def test_tags_cannot_be_forged_by_user_dicts() -> None:
    assert digest({"p": {"$str": "7aC97biA"}}) != digest({"p": "\ud83d\ude00"})
    assert digest({"n": {"$int": hex(10**4300)}}) != digest({"n": 10**4300})
    assert digest({"$str:7aC97biA": 1}) != digest({"\ud83d\ude00": 1})


def test_huge_ints_are_keyed_exactly() -> None:
    n = 10**4300
    assert digest({"n": n}) != digest({"n": n + 1})
    assert digest({"n": n}) == digest({"n": n})
    assert digest([-n]) != digest([n])
    assert normalize({"n": n}) == {"n": {"$int": hex(n)}}
    assert normalize(10**4300 - 1) == 10**4300 - 1  # 4,300 digits: decimal, as always


async def test_huge_ints_are_called_once_and_then_served() -> None:
    calls = 0

    async def call(_key: object) -> str:
        nonlocal calls
        calls += 1
        return "big"

    async with AgentCache("memory://") as cache:
        assert await cache.get_or_call({"n": 7**6000}, call) == "big"
        assert await cache.get_or_call({"n": 7**6000}, call) == "big"
        assert await cache.get_or_call({"n": 7**6000 + 1}, call) == "big"
    assert calls == 2


async def test_an_int_the_interpreter_will_not_write_is_a_clear_error_before_the_call() -> None:
    called = False

    async def call(_key: object) -> str:
        nonlocal called
        called = True
        return "x"

    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)  # lowered by the application: 10**2000 cannot be written
    try:
        async with AgentCache("memory://") as cache:
            with pytest.raises(
                KeyMaterialError, match=r"int this interpreter will not write as text.*set_int_max_str_digits"
            ):
                await cache.get_or_call({"n": 10**2000}, call)
            with pytest.raises(KeyMaterialError, match="set_int_max_str_digits"):
                canonical_json([10**2000])
    finally:
        sys.set_int_max_str_digits(limit)
    assert not called


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
