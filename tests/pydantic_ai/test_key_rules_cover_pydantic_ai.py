"""The key rules classify every field of the installed pydantic-ai: a new field fails here first.

When one of these fails after a pydantic-ai upgrade, read what the new field means and add it to
the right table in ``agentcache/pydantic_ai/_keys.py``: kept (it changes what is sent), renamed (an
id spelled anew on every run) or left out (with the reason). Then bump ``KEY_SCHEMA`` if keys of
existing requests change.
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

from agentcache.pydantic_ai._keys import (
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


def assert_classified(cls: type[Any], rules: FieldRules, fields: frozenset[str]) -> None:
    unclassified = fields - rules.classified()
    stale = rules.classified() - fields
    assert not unclassified, (
        f"{cls.__name__} has fields the key rules do not classify: {sorted(unclassified)}"
    )
    assert not stale, f"the key rules name fields {cls.__name__} no longer has: {sorted(stale)}"


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
def test_every_message_field_is_classified(cls: type[Any]) -> None:
    kind = discriminator(cls, "kind")
    assert kind in MESSAGE_RULES, f"no key rules for messages of kind {kind!r} ({cls.__name__})"
    assert_classified(cls, MESSAGE_RULES[kind], field_names(cls))


@pytest.mark.parametrize("cls", PART_CLASSES, ids=lambda c: c.__name__)
def test_every_part_field_is_classified(cls: type[Any]) -> None:
    kind = discriminator(cls, "part_kind")
    assert kind in PART_RULES, f"no key rules for parts of kind {kind!r} ({cls.__name__})"
    assert_classified(cls, PART_RULES[kind], field_names(cls))


def test_the_tables_name_no_message_or_part_kind_that_is_gone() -> None:
    assert set(MESSAGE_RULES) == {discriminator(c, "kind") for c in MESSAGE_CLASSES}
    assert set(PART_RULES) == {discriminator(c, "part_kind") for c in PART_CLASSES}


def test_every_request_parameter_is_classified() -> None:
    assert_classified(ModelRequestParameters, PARAMETER_RULES, field_names(ModelRequestParameters))


def test_every_tool_definition_field_is_classified() -> None:
    assert_classified(ToolDefinition, TOOL_RULES, field_names(ToolDefinition))


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_is_classified(cls: Any) -> None:
    names = frozenset(cls.__required_keys__ | cls.__optional_keys__)
    unclassified = names - SETTINGS_KEPT - SETTINGS_LEFT_OUT.keys()
    assert not unclassified, (
        f"{cls.__name__} has settings the key rules do not classify: {sorted(unclassified)}"
    )


def test_the_settings_tables_name_only_settings_that_exist() -> None:
    known = frozenset().union(*(c.__required_keys__ | c.__optional_keys__ for c in SETTINGS_CLASSES))
    assert (SETTINGS_KEPT | SETTINGS_LEFT_OUT.keys()) - known == set()


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
