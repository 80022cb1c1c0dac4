"""Property tests of key canonicalisation: equal material, equal key; any leaf changed, another key.

Material is generated as arbitrary JSON-like trees (str with surrogates and NULs, bytes, ints,
floats, bools, None, lists, tuples, dicts in any order). "Equal" means equal after the documented
canonical rules (tuples are lists, 1.0 is 1, -0.0 is 0, dict order is irrelevant).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import subprocess
import sys
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentcache.keys import canonical_json, digest, normalize

# Text with every code point, lone surrogates and NUL included.
texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.binary(max_size=12)
)
material = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=20,
)

Path = tuple[Any, ...]


def leaf_paths(value: Any, path: Path = ()) -> list[Path]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*path, k))] or [path]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*path, i))] or [path]
    return [path]


def get_at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def replace_at(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (replace_at(v, rest, new) if k == head else v) for k, v in value.items()}
    items = [replace_at(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return tuple(items) if isinstance(value, tuple) else items


def changed(leaf: Any) -> Any:
    """A leaf that differs from ``leaf`` under the canonical rules."""
    if leaf is None:
        return 0
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf + 1
    if isinstance(leaf, float):
        if leaf == 0:
            return 5e-324
        # Step towards zero: stepping away from it overflows the largest float to inf.
        return math.nextafter(leaf, 0.0)
    if isinstance(leaf, str):
        return leaf + "\x00"
    if isinstance(leaf, bytes):
        return leaf + b"\x00"
    if isinstance(leaf, (list, tuple)):
        return [*leaf, None]
    if isinstance(leaf, dict):
        return {**leaf, "\x00extra": None}
    raise AssertionError(leaf)


def reordered(value: Any, rng: random.Random) -> Any:
    """The same material with every dict built in another insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: reordered(v, rng) for k, v in items}
    if isinstance(value, (list, tuple)):
        items = [reordered(v, rng) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


@given(material)
def test_equal_material_gives_an_equal_key(value: Any) -> None:
    assert digest(value) == digest(copy.deepcopy(value))
    assert canonical_json(value) == canonical_json(copy.deepcopy(value))


@given(material, st.randoms(use_true_random=False))
def test_dict_order_never_matters(value: Any, rng: random.Random) -> None:
    assert digest(reordered(value, rng)) == digest(value)


@given(material, st.data())
def test_material_that_differs_in_any_leaf_gives_another_key(value: Any, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(leaf_paths(value)))
    other = replace_at(value, path, changed(get_at(value, path)))
    assert normalize(other) != normalize(value)  # the change is real under the canonical rules
    assert digest(other) != digest(value)


@given(material, material)
def test_keys_are_equal_exactly_when_canonical_forms_are(a: Any, b: Any) -> None:
    assert (digest(a) == digest(b)) == (canonical_json(a) == canonical_json(b))


@given(material)
def test_documented_equivalences_hold(value: Any) -> None:
    """Tuples are lists; the canonical JSON is plain ASCII JSON of the normalised form."""
    assert digest(as_lists(value)) == digest(value)
    assert canonical_json(value).isascii()
    assert json.loads(canonical_json(value)) == json.loads(json.dumps(normalize(value)))


def as_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    return value


@given(texts)
def test_a_prompt_and_the_same_text_inside_a_structure_are_different_keys(text: str) -> None:
    assert digest(text) != digest([text])
    assert digest(text) != digest({"prompt": text})


# Few characters, so that surrogate pairs, lone halves and the astral character they encode meet.
surrogate_texts = st.text(
    alphabet=["\ud83d", "\ude00", "\U0001f600", "\ud800", "\udfff", "a", "$"], max_size=6
)


def joined(text: str) -> str:
    """``text`` with each surrogate pair replaced by the character it encodes (a different string)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def assert_distinct_keys(a: str, b: str) -> None:
    assert digest(a) != digest(b)
    assert digest([a]) != digest([b])
    assert digest({"k": a}) != digest({"k": b})
    assert digest({a: 0}) != digest({b: 0})


@given(surrogate_texts, surrogate_texts)
def test_different_strings_never_share_a_key_wherever_they_are(a: str, b: str) -> None:
    assume(a != b)
    assert_distinct_keys(a, b)


@given(st.tuples(surrogate_texts, surrogate_texts).map(lambda parts: f"{parts[0]}\ud83d\ude00{parts[1]}"))
def test_a_string_and_its_pairs_joined_never_share_a_key(text: str) -> None:
    assert joined(text) != text  # it holds a surrogate pair
    assert_distinct_keys(text, joined(text))


@given(st.binary(max_size=32))
def test_bytes_never_collide_with_a_dict_that_looks_like_their_encoding(blob: bytes) -> None:
    import base64

    lookalike = {"$bytes": base64.b64encode(blob).decode()}
    assert digest(blob) != digest(lookalike)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_integral_floats_key_like_ints_and_other_floats_do_not(x: float) -> None:
    if x.is_integer():
        assert digest(x) == digest(int(x))
    else:
        assume(x != round(x))
        assert digest(x) != digest(round(x))


SAMPLES = [
    "a prompt",
    "\ud800 lone surrogate",
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "t": 0.7},
    [1, 2.5, None, True, "x", {"$weird": 1}],
]
DIGEST_SCRIPT = (
    "import json, sys\nfrom agentcache.keys import digest\n"
    "samples = json.loads(sys.stdin.read())\n"
    "print(json.dumps([digest(s) for s in samples]))\n"
)


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_keys_are_stable_across_processes_and_hash_seeds(seed: int) -> None:
    encoded = json.dumps(SAMPLES)  # surrogates travel as JSON escapes
    done = subprocess.run(
        [sys.executable, "-c", DIGEST_SCRIPT],
        input=encoded,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": str(seed)},
        check=True,
    )
    assert json.loads(done.stdout) == [digest(s) for s in json.loads(encoded)]
