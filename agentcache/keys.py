"""Key material -> canonical form -> stable stored key ("<namespace>:v1:<sha256 hex>").

Key material is a ``str`` (a prompt) or any JSON-like structure: dicts with ``str`` keys, lists,
tuples, str, int, float, bool, None, bytes, pydantic models, dataclasses and enums. It is reduced to
plain JSON values (``normalize``), written as canonical JSON (sorted keys, no spaces, ASCII) and
hashed with sha256. The rules, and why:

- dict order never matters (sorted keys); tuples and lists are the same sequence;
- an integral float is written as the int it equals (``1.0`` and ``1`` are one key), ``-0.0`` as
  ``0``; NaN and infinities are rejected because they have no canonical JSON form;
- bytes become ``{"$bytes": "<base64>"}``; a user dict key starting with ``$`` gets one more ``$``
  so no user dict can collide with that tag;
- pydantic models and dataclasses are keyed by their field values, not their class name; enums
  by their value;
- a top-level ``str`` (the common case, a prompt) is hashed from its UTF-8 bytes directly: it is
  the hot path and JSON-escaping 2 KB costs more than hashing it.

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
]

KEY_VERSION = "v1"

_STR_TAG = b"s\x00"  # domain separation: a top-level prompt vs canonical JSON
_JSON_TAG = b"j\x00"
_STR_HASHER = hashlib.sha256(_STR_TAG)
_JSON_HASHER = hashlib.sha256(_JSON_TAG)
_FORBIDDEN_NAMESPACE_CHARS = frozenset(":*?[]\\\"'%") | {chr(c) for c in range(33)} | {"\x7f"}


def normalize(material: object, path: str = "key") -> Any:
    """Reduce key material to plain JSON values, or raise ``KeyMaterialError`` naming the path."""
    # Exact type checks first: they are the common case and bool must not pass as int.
    kind = type(material)
    if kind is str or kind is bool or material is None:
        return material
    if kind is int:
        return material
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
        return str(material)
    if isinstance(material, int):
        return int(material)
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
        key = "$" + name if name.startswith("$") else name
        out[key] = normalize(item, f"{path}[{name!r}]")
    return out


def canonical_json(material: object) -> str:
    """The canonical JSON text of key material (what is hashed, and stored for inspection)."""
    try:
        return _dumps(normalize(material))
    except RecursionError:
        raise _too_deep() from None


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


def _too_deep() -> KeyMaterialError:
    # A list that contains itself, or nesting deeper than Python's recursion limit.
    return KeyMaterialError(
        "key material refers to itself or is nested too deeply to be canonicalised; "
        "pass a finite, acyclic structure"
    )


def digest_of_canonical(text: str) -> str:
    """The digest of key material given as its canonical JSON text (``Entry.material``)."""
    normal = json.loads(text)
    if type(normal) is str:
        return _str_digest(normal)
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
            if type(normal) is str:
                return Key(material, normal, f"{namespace}:{KEY_VERSION}:{_str_digest(normal)}")
            text = _dumps(normal)
        except RecursionError:
            raise _too_deep() from None
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
            self._canonical = _dumps(self.normal)
        return self._canonical

    def sample(self, slot: int) -> Key:
        """The key of sample ``slot`` (> 0) of this key: material no user key can produce."""
        normal = {_SAMPLE_TAG: slot, "key": self.normal}
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


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is usable, else raise ``ConfigurationError`` saying why."""
    if not isinstance(namespace, str) or not namespace:
        raise ConfigurationError(f"namespace must be a non-empty str, not {namespace!r}")
    bad = sorted(set(namespace) & _FORBIDDEN_NAMESPACE_CHARS)
    if bad or len(namespace) > 200:
        raise ConfigurationError(
            f"namespace {namespace!r} is not usable: use at most 200 characters without "
            f"whitespace, control characters or any of : * ? [ ] \\ \" ' % (found {bad!r})"
        )
    return namespace
