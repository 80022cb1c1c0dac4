"""Structured diffs of key material: paths, alignment of lists, readable excerpts, ranking."""

from __future__ import annotations

from agentcache._diff import ABSENT, Change, diff, dissimilarity, render_changes


def test_a_changed_setting_is_named_by_its_dotted_path() -> None:
    changes = diff({"settings": {"temperature": 0}}, {"settings": {"temperature": 0.7}})
    assert changes == [Change("settings.temperature", 0, 0.7)]
    assert changes[0].render() == "settings.temperature: 0 -> 0.7"


def test_a_nested_message_field_is_named_with_indexes() -> None:
    old = {"messages": [{"parts": [{"content": "hi"}]}, {"parts": [{"content": "France?"}]}]}
    new = {"messages": [{"parts": [{"content": "hi"}]}, {"parts": [{"content": "Spain?"}]}]}
    assert [c.path for c in diff(old, new)] == ["messages[1].parts[0].content"]


def test_an_inserted_message_is_one_change_not_a_shift_of_every_later_one() -> None:
    old = {"messages": ["a", "b", "c", "d"]}
    new = {"messages": ["a", "x", "b", "c", "d"]}
    assert diff(old, new) == [Change("messages[1]", ABSENT, "x")]


def test_a_removed_and_an_added_field_are_reported_as_such() -> None:
    changes = diff({"a": 1, "b": 2}, {"b": 2, "c": 3})
    assert [(c.path, c.kind) for c in changes] == [("a", "removed"), ("c", "added")]
    assert changes[0].render() == "a: 1 -> (absent)"


def test_true_and_one_are_different_key_material() -> None:
    assert diff({"stream": True}, {"stream": 1}) == [Change("stream", True, 1)]


def test_field_names_that_are_not_identifiers_are_quoted() -> None:
    changes = diff({"extra body": {"x-y": 1}}, {"extra body": {"x-y": 2}})
    assert changes[0].path == '["extra body"]["x-y"]'


def test_identical_material_has_no_changes() -> None:
    material = {"model": "m", "messages": [{"content": "x" * 1000}], "n": [1, 2.5, None]}
    assert diff(material, {**material}) == []


def test_a_long_prompt_is_shown_around_its_first_difference() -> None:
    head = "You are a careful assistant. " * 20
    line = diff(head + "Answer about France. Be brief.", head + "Answer about Spain. Be brief.")[0].render()
    assert "France" in line
    assert "Spain" in line
    assert line.startswith('(whole key): …"')  # the long common start is cut
    assert len(line) < 200


def test_rendering_stops_after_the_limit_and_counts_the_rest() -> None:
    changes = diff({str(i): i for i in range(20)}, {str(i): i + 1 for i in range(20)})
    text = render_changes(changes, limit=3)
    assert text.count("->") == 3
    assert text.endswith("... and 17 more")


def test_a_one_word_change_ranks_nearer_than_a_rewritten_prompt() -> None:
    base = "Summarise the following report about quarterly sales in Europe."
    small = diff(base, base.replace("Europe", "Asia"))
    large = diff(base, "Translate this poem into French, keeping the rhyme.")
    assert dissimilarity(small) < dissimilarity(large)


def test_change_json_leaves_out_the_absent_side() -> None:
    assert Change("a", ABSENT, 1).to_json() == {"path": "a", "kind": "added", "new": 1}
