"""Key material -> canonical form -> stable stored key ("<namespace>:v1:<sha256 hex>").

Key material is a ``str`` (a prompt) or any JSON-like structure: dicts with ``str`` keys, lists,
tuples, str, int, float, bool, None, bytes, pydantic models, dataclasses and enums. It is reduced to
plain JSON values (``normalize``), written as canonical JSON (sorted keys, no spaces, ASCII) and
hashed with sha256. The rules, and why:

- dict order never matters (sorted keys); tuples and lists are the same sequence;
- an integral float is written as the int it equals (``1.0`` and ``1`` are one key), ``-0.0`` as
  ``0``; NaN and infinities are rejected because they have no canonical JSON form;
- bytes become ``{"$bytes": "<base64>"}``; a user dict key starting with ``$`` gets one more ``$``
  so no user dict can collide with that tag (nor with the two below);
- an int of more than 4,300 digits (Python's default limit for writing an int as decimal text,
  fixed here so that keys never depend on an interpreter's setting) becomes
  ``{"$int": "<hex>"}``: exact, whatever its size;
- a string holding a surrogate pair (a high and a low surrogate code point in a row) becomes
  ``{"$str": "<base64 of its UTF-8, surrogates included>"}``, and a dict key holding one
  ``"$str:<base64>"``: canonical JSON writes such a pair with the same ``\\u`` escapes as the one
  character it encodes, and two different strings must never share a key. Every other string,
  lone surrogates included (their escapes are unambiguous), is written as itself;
- pydantic models and dataclasses are keyed by their field values, not their class name; enums
  by their value;
- a top-level ``str`` (the common case, a prompt) is hashed from its UTF-8 bytes directly
  (surrogates written as themselves): it is the hot path and JSON-escaping 2 KB costs more than
  hashing it. A top-level str subclass or enum of str hashes the same way; only its stored
  canonical text (``Key.canonical``) uses the ``$str`` form above where it holds a pair.

Anything else raises ``KeyMaterialError`` (a ``TypeError``) naming the type and the path
(``key['tools'][2]``) before anything is called. ``KEY_VERSION`` changes whenever these rules do,
so old entries are never served under new rules.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import math
import re
from typing import Any, final

from pydantic import BaseModel

from .errors import ConfigurationError, KeyMaterialError

__all__ = [
    "KEY_VERSION",
    "Key",
    "canonical_json",
    "digest",
    "digest_of_canonical",
    "normalize",
    "stored_key",
    "validate_namespace",
    "validate_stored_key",
]

KEY_VERSION = "v1"

_STR_TAG = b"s\x00"  # domain separation: a top-level prompt vs canonical JSON
_JSON_TAG = b"j\x00"
_STR_HASHER = hashlib.sha256(_STR_TAG)
_JSON_HASHER = hashlib.sha256(_JSON_TAG)
# Punctuation that separates key parts, globs (Redis SCAN) or quotes, and every ASCII control or space.
_FORBIDDEN_NAMESPACE_CHARS = frozenset(":*?[]\\\"'%") | {chr(c) for c in range(33)} | {"\x7f"}
# Beyond ASCII: separators (Zs Zl Zp: U+00A0, U+2028...), controls, format characters (U+200B,
# U+FEFF, U+202E: invisible, or reordering what is shown) and surrogates (not text at all).
_FORBIDDEN_NAMESPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs"})
_INT_DIGITS = 4300  # the most digits an int in key material is written with as decimal JSON
_MOST_DECIMAL_INT = 10**_INT_DIGITS - 1  # beyond these bounds: {"$int": hex(n)}
_LEAST_DECIMAL_INT = -_MOST_DECIMAL_INT
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_TEXT_TAG = "$str"


def normalize(material: object, path: str = "key") -> Any:
    """Reduce key material to plain JSON values, or raise ``KeyMaterialError`` naming the path."""
    # Exact type checks first: they are the common case and bool must not pass as int.
    kind = type(material)
    if kind is str:
        text: str = material  # type: ignore[assignment]
        if text.isascii():
            return text
        try:  # inline: the check runs for every non-ASCII string of every structured key
            text.encode()
            return text
        except UnicodeEncodeError:  # it holds a surrogate: does it hold a pair?
            return text if _SURROGATE_PAIR.search(text) is None else {_TEXT_TAG: _text_bytes(text)}
    if kind is bool or material is None:
        return material
    if kind is int:
        number: int = material  # type: ignore[assignment]
        if _LEAST_DECIMAL_INT <= number <= _MOST_DECIMAL_INT:
            return number
        return {"$int": hex(number)}
    if kind is float:
        return _normalize_float(material, path)  # type: ignore[arg-type]
    if kind is dict:
        return _normalize_dict(material, path)  # type: ignore[arg-type]
    if isinstance(material, (list, tuple)) and (kind is list or kind is tuple):
        return [normalize(item, f"{path}[{i}]") for i, item in enumerate(material)]
    if isinstance(material, enum.Enum):
        return normalize(material.value, path)
    if isinstance(material, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(material)).decode("ascii")}
    if isinstance(material, BaseModel):
        return normalize(material.model_dump(mode="json"), path)
    if dataclasses.is_dataclass(material) and not isinstance(material, type):
        fields = {f.name: getattr(material, f.name) for f in dataclasses.fields(material)}
        return _normalize_dict(fields, path)
    # Subclasses of the basic types (str enums are handled above, IntEnum too).
    if isinstance(material, bool):
        return bool(material)
    if isinstance(material, str):
        return normalize(str(material), path)
    if isinstance(material, int):
        return normalize(int(material), path)
    if isinstance(material, float):
        return _normalize_float(float(material), path)
    if isinstance(material, dict):
        return _normalize_dict(dict(material), path)
    if isinstance(material, (list, tuple)):
        return [normalize(item, f"{path}[{i}]") for i, item in enumerate(material)]
    hint = " (convert it to a sorted list)" if isinstance(material, (set, frozenset)) else ""
    raise KeyMaterialError(
        f"{path} is of unsupported type {type(material).__qualname__}{hint}; key material may "
        "hold dict (str keys), list, tuple, str, int, float, bool, None, bytes, pydantic models, "
        "dataclasses and enums"
    )


def _normalize_float(value: float, path: str) -> float | int:
    if not math.isfinite(value):
        raise KeyMaterialError(f"{path} is {value!r}; NaN and infinities have no canonical form")
    if value.is_integer():
        return int(value)
    return value


def _normalize_dict(material: dict[Any, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, item in material.items():
        if type(name) is not str:
            if isinstance(name, enum.Enum) and isinstance(name.value, str):
                name = name.value
            elif isinstance(name, str):
                name = str(name)
            else:
                raise KeyMaterialError(
                    f"{path} has a dict key of type {type(name).__qualname__} ({name!r}); "
                    "dict keys in key material must be str"
                )
        if not name.isascii() and _holds_surrogate_pair(name):
            key = f"{_TEXT_TAG}:{_text_bytes(name)}"
        else:
            key = "$" + name if name.startswith("$") else name
        out[key] = normalize(item, f"{path}[{name!r}]")
    return out


def _holds_surrogate_pair(text: str) -> bool:
    """True when ``text`` holds a high surrogate followed by a low one (two code points, not one).

    UTF-8 encoding is the quick scan (it fails on any surrogate); a regex over every string is
    slower than the JSON escaping it guards.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE_PAIR.search(text) is not None
    return False


def _text_bytes(text: str) -> str:
    """The exact code points of ``text`` (surrogates too), as base64 of their UTF-8."""
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


def _text_of(normal: Any) -> str | None:
    """The str a top-level normal form stands for (itself, or a ``$str`` tag); ``None`` if not a str.

    No user dict normalises to a ``$str`` tag (theirs become ``$$str``). Normal forms parsed from
    stored material may come from anywhere: a malformed tag is no str (and matches no str's key).
    """
    if type(normal) is str:
        return normal
    if type(normal) is dict and len(normal) == 1 and type(normal.get(_TEXT_TAG)) is str:
        try:
            return base64.b64decode(normal[_TEXT_TAG], validate=True).decode("utf-8", "surrogatepass")
        except ValueError:  # not base64 (binascii.Error), or not UTF-8 (UnicodeDecodeError)
            return None
    return None


def canonical_json(material: object) -> str:
    """The canonical JSON text of key material (what is hashed, and stored for inspection)."""
    try:
        return _dumps(normalize(material))
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise _too_long(exc) from None


def digest(material: object) -> str:
    """The sha256 hex digest of key material; identical across processes and PYTHONHASHSEED."""
    if type(material) is str:
        return _str_digest(material)
    return Key.of(material, "").stored.rsplit(":", 1)[1]


def _str_digest(text: str) -> str:
    # The hot path of every prompt-keyed lookup: a pre-seeded hasher and the strict UTF-8 codec
    # (an error handler argument alone costs a fifth of the hash); lone surrogates, which strict
    # UTF-8 refuses, take the slow path and hash the same bytes 'surrogatepass' gives.
    hasher = _STR_HASHER.copy()
    try:
        hasher.update(text.encode())
    except UnicodeEncodeError:
        hasher.update(text.encode("utf-8", "surrogatepass"))
    return hasher.hexdigest()


def _too_long(exc: ValueError) -> KeyMaterialError:
    # Ints of at most 4,300 digits are written as decimal text, which an interpreter whose
    # int-to-str limit was lowered below that refuses.
    return KeyMaterialError(
        f"key material holds an int this interpreter will not write as text ({exc}); ints of up to "
        f"{_INT_DIGITS} digits are keyed as decimal: keep sys.set_int_max_str_digits() at its "
        f"default ({_INT_DIGITS}) or higher, or pass the int as hex(n)"
    )


def _too_deep() -> KeyMaterialError:
    # A list that contains itself, or nesting deeper than Python's recursion limit.
    return KeyMaterialError(
        "key material refers to itself or is nested too deeply to be canonicalised; "
        "pass a finite, acyclic structure"
    )


def digest_of_canonical(text: str) -> str:
    """The digest of key material given as its canonical JSON text (``Entry.material``)."""
    prompt = _text_of(json.loads(text))
    if prompt is not None:
        return _str_digest(prompt)
    return _json_digest(text)


_SAMPLE_TAG = "$sample"  # a name no user dict can produce: user names starting with "$" get one more


@final
class Key:
    """Key material normalised once, with everything the layers below need of it.

    ``material`` is what the caller passed (``call_fn`` receives it), ``normal`` its plain-JSON
    normal form, ``stored`` the store's key (``"<namespace>:v1:<sha256 hex>"``). The canonical JSON
    text is derived from ``normal`` on first use (a hit never needs it). ``base`` is the key a
    sample slot was derived from (itself for an ordinary key): its normal form feeds explain's
    fingerprints, so near misses of sampled entries are found too.
    """

    __slots__ = ("_canonical", "base", "material", "normal", "stored")

    def __init__(self, material: object, normal: Any, stored: str, base: Key | None = None) -> None:
        self.material = material
        self.normal = normal
        self.stored = stored
        self.base = self if base is None else base
        self._canonical: str | None = None

    @staticmethod
    def of(material: object, namespace: str) -> Key:
        """Normalise ``material`` (raising ``KeyMaterialError`` naming the path) and hash it."""
        if type(material) is str:
            return Key(material, material, f"{namespace}:{KEY_VERSION}:{_str_digest(material)}")
        try:
            normal = normalize(material)
            prompt = _text_of(normal)  # a str subclass or enum: hashed like the str it is
            if prompt is not None:
                return Key(material, prompt, f"{namespace}:{KEY_VERSION}:{_str_digest(prompt)}")
            text = _dumps(normal)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as exc:
            raise _too_long(exc) from None
        key = Key(material, normal, f"{namespace}:{KEY_VERSION}:{_json_digest(text)}")
        key._canonical = text
        return key

    @property
    def namespace(self) -> str:
        """The namespace part of the stored key."""
        return self.stored.split(":", 1)[0]

    @property
    def canonical(self) -> str:
        """The canonical JSON text of the material (what is stored for inspection)."""
        if self._canonical is None:
            self._canonical = _dumps(self._tagged_normal())
        return self._canonical

    def _tagged_normal(self) -> Any:
        """``normal`` as canonical JSON must show it: a prompt holding a surrogate pair as its tag."""
        return normalize(self.normal) if type(self.normal) is str else self.normal

    def sample(self, slot: int) -> Key:
        """The key of sample ``slot`` (> 0) of this key: material no user key can produce."""
        normal = {_SAMPLE_TAG: slot, "key": self._tagged_normal()}
        text = _dumps(normal)
        key = Key(self.material, normal, f"{self.namespace}:{KEY_VERSION}:{_json_digest(text)}", self)
        key._canonical = text
        return key

    def __repr__(self) -> str:
        return f"Key({self.stored!r})"


def _dumps(normal: Any) -> str:
    return json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _json_digest(text: str) -> str:
    hasher = _JSON_HASHER.copy()
    hasher.update(text.encode("ascii"))
    return hasher.hexdigest()


def stored_key(material: object, namespace: str) -> str:
    """The key a store sees: ``"<namespace>:v1:<sha256 hex>"``."""
    return f"{namespace}:{KEY_VERSION}:{digest(material)}"


_DIGEST_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


def validate_stored_key(key: object) -> str:
    """Return ``key`` if a cache can look it up (``"<namespace>:v1:<sha256 hex>"``), else raise
    ``ConfigurationError`` saying which part is wrong. Keys from outside (an import file) are
    checked with it: a key no cache can compute is a row nobody can ever read or clear by name.
    """
    if not isinstance(key, str) or key.count(":") != 2:
        raise ConfigurationError("a stored key has three parts, namespace:version:digest")
    namespace, version, hexdigest = key.split(":")
    validate_namespace(namespace)
    if version != KEY_VERSION:
        raise ConfigurationError(
            f"key version {version!r} is not {KEY_VERSION!r}, the one this agentcache computes"
        )
    if len(hexdigest) != _DIGEST_LENGTH or not _HEX_DIGITS.issuperset(hexdigest):
        raise ConfigurationError(f"the digest must be {_DIGEST_LENGTH} lowercase hex digits (sha256)")
    return key


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is usable, else raise ``ConfigurationError`` saying why.

    A namespace is shown in listings and typed in commands, so it must look like what it is: no
    whitespace, nothing invisible, no character that could not be stored as text, and none of the
    characters that separate key parts or act as patterns.
    """
    if not isinstance(namespace, str) or not namespace:
        raise ConfigurationError(f"namespace must be a non-empty str, not {namespace!r}")
    if namespace.isascii():
        bad = sorted(set(namespace) & _FORBIDDEN_NAMESPACE_CHARS)
    else:
        bad = sorted({c for c in namespace if c in _FORBIDDEN_NAMESPACE_CHARS or _is_unseen(c)})
    if bad or len(namespace) > 200:
        raise ConfigurationError(
            f"namespace {namespace!r} is not usable: use at most 200 characters without whitespace, "
            f"control, invisible (format) or surrogate characters, or any of : * ? [ ] \\ \" ' % "
            f"(found {bad!r})"
        )
    return namespace


def _is_unseen(char: str) -> bool:
    """True for a character that is whitespace, invisible, a control, or no text (a surrogate)."""
    import unicodedata  # only for namespaces beyond ASCII

    return char.isspace() or unicodedata.category(char) in _FORBIDDEN_NAMESPACE_CATEGORIES
