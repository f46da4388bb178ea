"""The Gradio page: `build_demo(config)` puts the tabs together (one builder per tab, in
`app/tab_*.py`, over the plain-Python handlers of `app.handlers`).

Everything shared (model registry, review database, feature cache, trainer) is created here, per
app, in an `AppContext`; per-tab state is a `gr.State(Session)`. The public API is `/analyse`,
`/rescore`, `/decide_segment`, `/export_reviews` and `/start_training`; every other event is private.
"""
from __future__ import annotations

import gradio as gr

from . import handlers as h
from .config import AppConfig
from .desk import CSS as DESK_CSS, head_html
from .state import Session
from .tab_about import build_about_tab
from .tab_analyse import build_analyse_tab
from .tab_review import build_review_tab, build_reviewer_box
from .tab_train import build_train_tab
from .wiring import session_id

TITLE = "VadCLIP · video anomaly review"
CSS = """
.vad-banner {background:#b91c1c; color:#fff; padding:12px 16px; border-radius:8px;
             font-weight:700; font-size:1.05em; letter-spacing:.01em}
.vad-banner, .vad-banner * {color:#fff !important}
.vad-banner small {font-weight:400; font-size:.85em}
.vad-header h1 {margin:4px 0 0 0; font-size:1.7em}
.vad-header p {margin:4px 0 0 0; opacity:.8; max-width:70em}
#segment-table td, #review-table td {vertical-align:middle}
#review-table img {max-height:54px; border-radius:4px}
footer {display:none !important}
"""
INTRO = """<div class="vad-header">
<h1>VadCLIP · video anomaly review</h1>
<p>Upload a video or pick an example, choose a model and a vocabulary of anomaly classes, and
press <b>Analyse</b>. The timeline shows the anomaly score over time and the class probabilities;
flagged segments go to the <b>Review queue</b>, where moderators confirm, dismiss or relabel them.</p>
</div>"""


def launch_options(config: AppConfig) -> dict:
    """Keyword arguments for `demo.launch` (theme, CSS, upload limit, readable folders: the
    example videos and the models folder, for checkpoint downloads; never the data folder)."""
    return dict(
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="rose"),
        css=CSS + DESK_CSS,
        head=head_html(),                  # player/timeline sync and review keys (app/desk.js)
        auth=list(config.auth) or None,    # --auth user:password: the login names the reviewer
        max_file_size=f"{config.max_upload_mb:g}mb",
        allowed_paths=[str(config.assets_dir.resolve()), str(config.models_dir.resolve())],
        footer_links=[],
    )


def build_demo(config: AppConfig) -> gr.Blocks:
    """The whole app as a `gr.Blocks` (call `.queue(...)` and `.launch(**launch_options(config))`)."""
    ctx = h.AppContext.create(config)
    age_s = int(config.temp_max_age_min * 60)
    with gr.Blocks(title=TITLE, analytics_enabled=False,
                   delete_cache=(max(60, age_s // 4), age_s)) as demo:   # Gradio's own copies
        demo.vadclip_context = ctx          # for tests and clean shutdown
        session = gr.State(Session())
        gr.HTML(INTRO)
        reviewer = build_reviewer_box()
        with gr.Tabs(elem_id="tabs"):
            analyse = build_analyse_tab(ctx, demo, session, reviewer)
            review = build_review_tab(ctx, demo, session, analyse.segments, reviewer)
            build_train_tab(ctx, demo, session, analyse.model)
            build_about_tab(config, ctx.device)
        review.refresh_after(analyse.queue_changed)

        def end_session(request: gr.Request):
            ctx.end_session(session_id(request))

        demo.unload(end_session)
    return demo
