"""Who is reviewing: one plain-string reviewer name per decision, and the app's optional logins.

The UI supplies the name from whichever source it has, strongest first: a Hugging Face sign-in
(OAuth username, on a Space), a Gradio login (`--auth user:password`, locally), or a name the
moderator typed. Without any of them decisions are recorded as `anonymous`.
"""
from __future__ import annotations

from typing import Iterable

from vadclip.errors import UserError

ANONYMOUS = "anonymous"
MAX_REVIEWER_LENGTH = 128          # the width of the reviewer columns in the review database


def normalize_reviewer(name: str | None) -> str:
    """`name` trimmed with inner whitespace collapsed; `anonymous` when empty. UserError when it
    is too long or holds control characters."""
    text = " ".join((name or "").split())
    if not text:
        return ANONYMOUS
    if len(text) > MAX_REVIEWER_LENGTH:
        raise UserError(f"the reviewer name is too long ({len(text)} characters; "
                         f"at most {MAX_REVIEWER_LENGTH})")
    if any(not ch.isprintable() for ch in text):
        raise UserError("the reviewer name holds control characters; type a plain name")
    return text


def resolve_reviewer(oauth_username: str | None = None, auth_username: str | None = None,
                     typed_name: str | None = None) -> str:
    """The reviewer of a request: the Hugging Face username when signed in, else the Gradio login,
    else the typed name, else `anonymous`."""
    for name in (oauth_username, auth_username, typed_name):
        if name and name.strip():
            return normalize_reviewer(name)
    return ANONYMOUS


def parse_auth(pairs: Iterable[str]) -> list[tuple[str, str]]:
    """`["alice:secret", "bob:pw"]` (one `user:password` per `--auth` flag) as Gradio's
    `launch(auth=...)` list. The password may hold colons; ValueError on a malformed pair."""
    logins: list[tuple[str, str]] = []
    for pair in pairs:
        user, sep, password = pair.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            raise UserError(f"bad --auth value {pair.split(':')[0]!r}:...; use user:password")
        if any(user == known for known, _ in logins):
            raise UserError(f"--auth names the user {user!r} twice")
        logins.append((normalize_reviewer(user), password))
    return logins
