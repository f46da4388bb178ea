"""The moderator's desk in the page: the script that makes player and timeline one instrument and
gives the keyboard shortcuts (`app/desk.js`, loaded with `launch(head=...)`), and the key help."""
from __future__ import annotations

from pathlib import Path

SCRIPT = Path(__file__).with_name("desk.js")

# key, what it does (in order of a review)
KEYS = (("j / k", "next / previous segment (seeks the player)"),
        ("space", "play / pause"),
        ("← / → or h / l", "back / forward 5 s"),
        ("c", "confirm"), ("d", "dismiss"),
        ("r", "relabel: type the class, Enter applies"),
        ("Esc", "leave a text box (keys do nothing while typing)"))

CSS = """
[role=row].vad-current [role=gridcell] {background: rgba(250, 204, 21, .35) !important}
.vad-keys {font-size: .85em; opacity: .85}
.vad-keys kbd {border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: .9em;
               background: rgba(127,127,127,.12)}
"""


def head_html() -> str:
    """The `<script>` for `launch(head=...)`."""
    return f"<script>\n{SCRIPT.read_text(encoding='utf-8')}\n</script>"


def key_help_html(elem_id: str) -> str:
    """The visible key help shown under a tab's table."""
    keys = " · ".join(f"<kbd>{k}</kbd> {what}" for k, what in KEYS)
    return f"<div class='vad-keys' id='{elem_id}'><b>Keys</b>: {keys}</div>"
