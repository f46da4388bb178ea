"""Where the read-only shared material is: `$VADCLIP_SHARED`, else ../shared next to the repository."""
from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("VADCLIP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
OFFICIAL = SHARED / "fixtures" / "official"
