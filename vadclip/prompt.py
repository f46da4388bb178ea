"""Class names -> token positions of VadCLIP's learnable text prompt (spec step 5).

For a class name with CLIP tokens ``ids`` (start token at 0, end token at ``k = argmax(ids)``),
the prompt sequence is the learned table ``P_text [77, W]`` with:
- position 0: the start token's embedding,
- positions ``prefix+1 .. prefix+k-1``: the name's tokens ``ids[1:k]``,
- position ``prefix+k+postfix``: the end token's embedding (the text feature is read there).
`PromptTokens.source_index[c, p]` says which token of ``ids[c]`` goes to position p (-1: keep the
learned embedding), so the whole vocabulary is assembled with one gather.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import VocabularyError

CONTEXT_LENGTH = 77
MAX_CLASSES = 256


@dataclass
class PromptTokens:
    ids: torch.Tensor            # [C, 77] CLIP token ids of the bare class names
    eot_position: torch.Tensor   # [C] where the end token sits in the prompt sequence
    source_index: torch.Tensor   # [C, 77] token index of ids taken at each position, -1 = learned


def max_name_tokens(prefix: int, postfix: int) -> int:
    """Most BPE tokens a class name may have so that its end token still fits in 77 positions."""
    return CONTEXT_LENGTH - 2 - prefix - postfix


def validate_class_names(class_names: list[str]) -> list[str]:
    """Clean a vocabulary: strip names; refuse an empty list, empty or duplicate names."""
    if isinstance(class_names, str):
        raise VocabularyError("class_names must be a list of names, not one string")
    names = [str(n).strip() for n in class_names]
    problems = []
    if len(names) < 2:
        problems.append("the vocabulary needs the normal class (index 0) and at least one anomaly class")
    if len(names) > MAX_CLASSES:
        problems.append(f"{len(names)} classes; at most {MAX_CLASSES} are supported")
    if any(not n for n in names):
        problems.append("empty class name")
    seen, dups = set(), []
    for n in names:
        if n.lower() in seen and n.lower() not in dups:
            dups.append(n.lower())
        seen.add(n.lower())
    if dups:
        problems.append("duplicate class names: " + ", ".join(repr(d) for d in dups))
    if problems:
        raise VocabularyError("; ".join(problems))
    return names


def check_token_lengths(tokenizer, names: list[str], texts: list[str], limit: int, what: str) -> None:
    """ValueError naming every class whose text (the name, or its prompt) has more than `limit`
    CLIP tokens; `what` ends the message's first part ("the prompt (at most 57 CLIP tokens)")."""
    too_long = [(n, len(tokenizer.encode(t))) for n, t in zip(names, texts)]
    too_long = [(n, k) for n, k in too_long if k > limit]
    if too_long:
        raise VocabularyError(f"class name too long for {what}: " + ", ".join(
            f"{n[:40]!r}{'...' if len(n) > 40 else ''} ({k} tokens)" for n, k in too_long))


def tokenize_class_names(tokenizer, class_names: list[str], prefix: int, postfix: int,
                         device: str | torch.device = "cpu") -> PromptTokens:
    """Tokenise class names with CLIP's tokenizer and lay them out in the learned prompt."""
    names = validate_class_names(class_names)
    limit = max_name_tokens(prefix, postfix)
    check_token_lengths(tokenizer, names, names, limit, f"the prompt (at most {limit} CLIP tokens)")
    ids = tokenizer(names).to(device)                                   # [C, 77]
    k = ids.argmax(dim=-1)                                              # end-token index per name
    pos = torch.arange(CONTEXT_LENGTH, device=device)[None, :]          # [1, 77]
    j = pos - prefix                                                    # name token feeding position
    src = torch.full_like(ids, -1)
    src = torch.where((j >= 1) & (j < k[:, None]), j, src)
    eot = prefix + k + postfix
    src = torch.where(pos == eot[:, None], k[:, None], src)
    src[:, 0] = 0
    return PromptTokens(ids=ids, eot_position=eot, source_index=src)
