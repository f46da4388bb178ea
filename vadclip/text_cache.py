"""Text features kept per class name, so an edited vocabulary only encodes its new names.

A class's text feature depends on its own name only (VadCLIP's learned prompt and CLIP's text
tower treat the classes of a vocabulary independently, and so do zero-shot prompts), so features
computed for one vocabulary can be reused, row by row, for another.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import torch

TEXT_CACHE_SIZE = 512     # class names kept (least recently used dropped first)


class TextFeatureCache:
    """`cache(names) -> [len(names), D]`, computed by `encode(names)` for the names not seen yet.

    `encode` must accept any vocabulary of two or more names. The cached features must stay valid:
    do not train the model behind `encode` while the cache is in use.
    """

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], size: int = TEXT_CACHE_SIZE):
        self.encode = encode
        self.size = size
        self._rows: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def __call__(self, class_names: list[str]) -> torch.Tensor:
        names = list(class_names)
        with self._lock:
            missing = [n for n in dict.fromkeys(names) if n not in self._rows]
            if missing:
                # Encoders validate whole vocabularies (two names at least): pad a single missing
                # name with another name of the vocabulary and drop that row.
                batch = missing if len(missing) > 1 else missing + [next(n for n in names if n != missing[0])]
                with torch.no_grad():
                    encoded = self.encode(batch)
                self._rows.update(zip(missing, encoded[:len(missing)]))
            for n in names:
                self._rows.move_to_end(n)
            text = torch.stack([self._rows[n] for n in names])
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        return text
