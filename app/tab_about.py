"""The About tab: how the scoring works and this server's settings."""
from __future__ import annotations

import gradio as gr

from .config import AppConfig


def build_about_tab(config: AppConfig, device: str) -> None:
    """The About tab (call inside `gr.Tabs`)."""
    with gr.Tab("About", id="about"):
        gr.Markdown(about_markdown(config, device))


def about_markdown(config: AppConfig, device: str) -> str:
    return f"""
### How it works
VadCLIP encodes each 16-frame snippet with a frozen CLIP image encoder, then a small temporal
adapter scores it twice: the **C-branch** (a binary anomaly score) and the **A-branch** (class
probabilities against the text of your vocabulary; its anomaly score is 1 − P(normal)). Segments
are runs of snippets over the threshold, merged across short gaps and labelled with the class of
highest mean probability. *CLIP zero-shot* skips the adapter and compares frames with the class
prompts directly (a much weaker baseline).

Features of an analysed video are kept (in this tab and in the feature cache), so a new
vocabulary, threshold or branch re-scores instantly without decoding the video again.

### This server
| setting | value |
|---|---|
| device | `{device}` |
| zero-shot CLIP (`VADCLIP_CLIP`) | `{config.clip}` |
| models folder | `{config.models_dir}` |
| data folder | `{config.data_dir}` |
| longest video | {config.max_video_s:g} s |
| largest upload | {config.max_upload_mb:g} MB |
"""
