"""The per-recipient values of a tracked email: one signed URL per link, and the open pixel.

Built once per issue (``TrackedLinks``), then called once per recipient: one
SHAKE call for every MAC of the message, then string joins, so tracking adds
a few microseconds per recipient whatever the number of links (measured in
``bench/bench_render.py``).  A reader who turned tracking off gets the
original URLs and no pixel, from the same template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from newsletter.message import OPEN_PIXEL, link_field
from newsletter.tracking.tokens import MAC_CHARS, LinkSigner

CLICK_PATH = "/r/"
OPEN_PATH = "/o/"
PIXEL = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />'
)


@dataclass
class TrackedLinks:
    """An issue's links (position -> original URL) and how to sign them for one recipient."""

    issue_id: int
    urls: Mapping[int, str]  # position -> the link's own URL
    signer: LinkSigner
    base_url: str
    opens: bool = True  # add the open pixel
    _fields: list[tuple[int, str, str]] = field(init=False, default_factory=list)
    _count: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._fields = [(p, link_field(p), f"{p:x}.") for p in sorted(self.urls)]
        self._count = max(self.urls, default=0) + 1  # positions 0 (the pixel) .. max

    def untracked(self) -> dict[str, str]:
        """A reader who opted out: the links as they are, no pixel."""
        values = {name: self.urls[p] for p, name, _ in self._fields}
        values[OPEN_PIXEL] = ""
        return values

    def values(self, delivery_id: int) -> dict[str, str]:
        macs = self.signer.macs(delivery_id, self.issue_id, self._count)
        head = f"{delivery_id:x}.{self.issue_id:x}."
        click = f"{self.base_url}{CLICK_PATH}{head}"
        values = {
            name: f"{click}{hexdot}{macs[p * MAC_CHARS : (p + 1) * MAC_CHARS]}"
            for p, name, hexdot in self._fields
        }
        if self.opens:
            src = f"{self.base_url}{OPEN_PATH}{head}0.{macs[:MAC_CHARS]}.gif"
            values[OPEN_PIXEL] = PIXEL.format(src=src)
        else:
            values[OPEN_PIXEL] = ""
        return values
