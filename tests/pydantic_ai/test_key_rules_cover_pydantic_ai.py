"""The key rules classify every field of the installed pydantic-ai: a new field fails here first.

When one of these fails after a pydantic-ai upgrade, read what the new field means and add it to
the right table in ``agentcache/pydantic_ai/_keys.py``: kept (it changes what is sent), renamed (an
id spelled anew on every run) or left out (with the reason). Then bump ``KEY_SCHEMA`` if keys of
existing requests change.

The same tests run on the oldest supported pydantic-ai (``make test-pydantic-ai-range``). There a
field, part kind or setting the rules name may be absent, if it is listed as added since
(``ADDED_FIELDS``, ``ADDED_KINDS``, ``ADDED_SETTINGS``); a field the rules do not know still fails.
A new kept field goes into ``ADDED_FIELDS`` too, with the value it dumps when unused, so the same
request keeps one key on every version.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequestPart, ModelResponsePart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.anthropic import AnthropicModelSettings
from pydantic_ai.models.openai import OpenAIChatModelSettings, OpenAIResponsesModelSettings
from pydantic_ai.models.openrouter import OpenRouterModelSettings
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_core import to_jsonable_python

from agentcache.pydantic_ai._keys import (
    ADDED_FIELDS,
    ADDED_KINDS,
    ADDED_SETTINGS,
    MESSAGE_RULES,
    PARAMETER_RULES,
    PART_RULES,
    SETTINGS_KEPT,
    SETTINGS_LEFT_OUT,
    TOOL_RULES,
    FieldRules,
)

SETTINGS_CLASSES = [
    ModelSettings,
    OpenAIChatModelSettings,
    OpenAIResponsesModelSettings,
    AnthropicModelSettings,
    OpenRouterModelSettings,
]


def members(union: Any) -> list[type[Any]]:
    """The classes of a (possibly Annotated, possibly nested) union, each once, in order."""
    if typing.get_origin(union) is typing.Annotated:
        return members(typing.get_args(union)[0])
    if typing.get_origin(union) in (typing.Union, types.UnionType):
        found: list[type[Any]] = []
        for arm in typing.get_args(union):
            found += [cls for cls in members(arm) if cls not in found]
        return found
    return [union]


def field_names(cls: type[Any]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def discriminator(cls: type[Any], name: str) -> str:
    (default,) = [f.default for f in dataclasses.fields(cls) if f.name == name]
    assert isinstance(default, str)
    return default


PART_CLASSES = members(ModelRequestPart) + [
    c for c in members(ModelResponsePart) if c not in members(ModelRequestPart)
]
MESSAGE_CLASSES = members(ModelMessage)


def assert_classified(cls: type[Any], rules: FieldRules, fields: frozenset[str], added_as: str) -> None:
    """Every field of ``cls`` has a rule; a rule names a field ``cls`` lacks only if it is newer."""
    added = frozenset(ADDED_FIELDS.get(added_as, {}))
    unclassified = fields - rules.classified()
    stale = rules.classified() - fields - added
    assert not unclassified, (
        f"{cls.__name__} has fields the key rules do not classify: {sorted(unclassified)}"
    )
    assert not stale, (
        f"the key rules name fields {cls.__name__} does not have: {sorted(stale)} (if they were added "
        "after the oldest supported pydantic-ai, list them in ADDED_FIELDS)"
    )
    assert added <= rules.classified(), (
        f"ADDED_FIELDS names fields without rules: {sorted(added - rules.classified())}"
    )


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
def test_every_message_field_is_classified(cls: type[Any]) -> None:
    kind = discriminator(cls, "kind")
    assert kind in MESSAGE_RULES, f"no key rules for messages of kind {kind!r} ({cls.__name__})"
    assert_classified(cls, MESSAGE_RULES[kind], field_names(cls), kind)


@pytest.mark.parametrize("cls", PART_CLASSES, ids=lambda c: c.__name__)
def test_every_part_field_is_classified(cls: type[Any]) -> None:
    kind = discriminator(cls, "part_kind")
    assert kind in PART_RULES, f"no key rules for parts of kind {kind!r} ({cls.__name__})"
    assert_classified(cls, PART_RULES[kind], field_names(cls), kind)


def test_the_tables_name_no_message_or_part_kind_that_is_gone() -> None:
    assert set(MESSAGE_RULES) == {discriminator(c, "kind") for c in MESSAGE_CLASSES}
    installed = {discriminator(c, "part_kind") for c in PART_CLASSES}
    assert installed <= set(PART_RULES)
    assert set(PART_RULES) - installed <= ADDED_KINDS, (
        "a part kind is gone (or newer: list it in ADDED_KINDS)"
    )
    assert set(PART_RULES) >= ADDED_KINDS


def test_every_request_parameter_is_classified() -> None:
    fields = field_names(ModelRequestParameters)
    assert_classified(ModelRequestParameters, PARAMETER_RULES, fields, "ModelRequestParameters")


def test_every_tool_definition_field_is_classified() -> None:
    assert_classified(ToolDefinition, TOOL_RULES, field_names(ToolDefinition), "ToolDefinition")


def added_fields_installed() -> list[tuple[type[Any], str, Any]]:
    """(class, field, the value ADDED_FIELDS fills in) for each added field this pydantic-ai has."""
    classes: dict[str, list[type[Any]]] = {"ModelRequestParameters": [ModelRequestParameters]}
    classes["ToolDefinition"] = [ToolDefinition]
    for cls in MESSAGE_CLASSES:
        classes.setdefault(discriminator(cls, "kind"), []).append(cls)
    for cls in PART_CLASSES:
        classes.setdefault(discriminator(cls, "part_kind"), []).append(cls)
    return [
        (cls, name, unused)
        for kind, added in ADDED_FIELDS.items()
        for cls in classes.get(kind, [])
        for name, unused in added.items()
        if name in field_names(cls)
    ]


def test_an_added_field_is_filled_in_with_the_value_it_has_when_unused() -> None:
    # On the oldest supported pydantic-ai none of them is installed; on the newest all are.
    for cls, name, unused in added_fields_installed():
        (spec,) = [f for f in dataclasses.fields(cls) if f.name == name]
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        assert default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no default: it is always used"
        assert to_jsonable_python(default) == unused, f"{cls.__name__}.{name}"


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_is_classified(cls: Any) -> None:
    names = frozenset(cls.__required_keys__ | cls.__optional_keys__)
    unclassified = names - SETTINGS_KEPT - SETTINGS_LEFT_OUT.keys()
    assert not unclassified, (
        f"{cls.__name__} has settings the key rules do not classify: {sorted(unclassified)}"
    )


def test_the_settings_tables_name_only_settings_that_exist() -> None:
    known = frozenset().union(*(c.__required_keys__ | c.__optional_keys__ for c in SETTINGS_CLASSES))
    assert (SETTINGS_KEPT | SETTINGS_LEFT_OUT.keys()) - known - ADDED_SETTINGS == set()
    assert SETTINGS_KEPT | SETTINGS_LEFT_OUT.keys() >= ADDED_SETTINGS


def all_rules() -> list[tuple[str, FieldRules]]:
    return [
        *(("message " + k, r) for k, r in MESSAGE_RULES.items()),
        *(("part " + k, r) for k, r in PART_RULES.items()),
        ("parameters", PARAMETER_RULES),
        ("tool definition", TOOL_RULES),
    ]


@pytest.mark.parametrize(("name", "rules"), all_rules(), ids=[n for n, _ in all_rules()])
def test_each_field_has_exactly_one_rule(name: str, rules: FieldRules) -> None:
    kept, renamed, left_out = rules.kept, set(rules.renamed), set(rules.left_out)
    assert not kept & renamed, name
    assert not kept & left_out, name
    assert not renamed & left_out, name
    assert all(reason for reason in rules.left_out.values()), f"{name}: every field left out says why"


def test_no_setting_is_both_kept_and_left_out() -> None:
    assert SETTINGS_KEPT & SETTINGS_LEFT_OUT.keys() == set()
