"""Store URLs' credentials: URLs shown with anything secret hidden, and URLs that read two ways refused.

``urlsplit`` ends a URL's authority (``user:password@host:port``) at the first ``/``, ``?`` or
``#``. A password holding one of them unencoded is therefore cut in two: urlsplit sees no password
at all (so a redaction built on it hides nothing), and the rest of the password becomes the port,
the path, the query or a fragment, which can route the store to another server (``redis://:6390#pw@
10.9.9.9:6379/0`` is localhost:6390) and drop its options. So:

- ``redact_url`` works on the text, not on urlsplit's reading of it: everything between ``://`` and
  the last ``@`` may be a credential, and is shown only as far as the URL reads one way.
- ``split_url`` is ``urlsplit`` for store URLs that read one way only: an ``@`` after the host part,
  a ``#``, a ``%`` that starts no ``%XX`` escape in the user name or password, a bracket there, or a
  control character are refused with a ``ConfigurationError`` that says to percent-encode, and never
  shows the password.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from ..errors import ConfigurationError

__all__ = ["SCHEME", "redact_url", "split_url"]

SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
"""What a URL scheme may be (RFC 3986); text before ``://`` that is not one is no scheme."""
_AUTHORITY_END = re.compile(r"[/?#]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODE = "percent-encode it: urllib.parse.quote(password, safe='')"


def redact_url(url: str) -> str:
    """``url`` with its password, and whatever else may be part of one, shown as ``***``.

    For errors, warnings, logs and ``repr``. A URL that reads one way (no ``@`` after its host part)
    keeps its user name: ``redis://user:***@host:6379/0``. Otherwise everything up to the last
    ``@`` is hidden: ``redis://***@host:6379/0``. A URL without an authority (``sqlite:///path``,
    ``memory://``) has no credentials and is returned as it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not SCHEME.fullmatch(scheme):  # not a URL: what precedes an '@' may be a password
        at = url.rfind("@")
        return url if at < 0 else f"***{url[at:]}"
    end = _authority_end(rest)
    at = rest.rfind("@")
    if end == 0 or at < 0:
        return url
    if at > end:  # a password holding '/', '?' or '#' (or an '@' in the path): hide all of it
        return f"{scheme}://***{rest[at:]}"
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{rest[at:]}"


def split_url(url: str) -> SplitResult:
    """``urlsplit(url)`` for a store URL, refusing one that urlsplit and the drivers may read two ways.

    Raises ``ConfigurationError`` naming the problem and the fix (percent-encoding); the message
    shows the URL only as ``redact_url`` does.
    """
    scheme, _, rest = url.partition("://")
    end = _authority_end(rest)
    authority, tail = rest[:end], rest[end:]
    userinfo = authority.rpartition("@")[0]
    problem = None
    if _CONTROL.search(url):
        problem = f"holds a control character (a tab, a newline...); if it is in the password, {_ENCODE}"
    elif "#" in tail:
        problem = f"holds a '#', which ends what is read of it; write it as %23 (in a password: {_ENCODE})"
    elif authority and "@" in tail:
        problem = (
            "has an '@' after a '/' or '?', so it could route to another server than the one meant: "
            f"if the password holds '/', '?' or '@', {_ENCODE} (an '@' in an option is written %40)"
        )
    elif _BAD_PERCENT.search(userinfo):
        problem = f"has a '%' in its user name or password that starts no %XX escape; {_ENCODE}"
    elif "[" in userinfo or "]" in userinfo:
        problem = f"has a '[' or ']' in its user name or password; {_ENCODE}"
    if problem is not None:
        raise ConfigurationError(f"store URL {redact_url(url)!r} {problem}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port lazily; a bad one must fail here, clearly
    except ValueError:
        # Never echo the host part here: "redis://:password" (the '@host' forgotten) reads as a port.
        hidden = f"{scheme}://***{tail}"
        raise ConfigurationError(
            f"store URL {hidden!r} has a host part that does not parse (a port that is not a number, "
            f"an unbalanced '[', a character urlsplit refuses); if it holds a password, {_ENCODE}"
        ) from None
    return parts


def _authority_end(rest: str) -> int:
    """Where urlsplit ends the authority of ``rest`` (the URL after ``://``)."""
    found = _AUTHORITY_END.search(rest)
    return len(rest) if found is None else found.start()
