"""The Analyse tab: video, model, vocabulary and detection settings; timeline, segment table,
preview and quick decisions; comparing two models on the video. API: `/analyse`, `/rescore`,
`/decide_segment`, `/compare`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from vadclip.constants import RANDOM_WEIGHTS_WARNING
from vadclip.errors import UserError
from vadclip.results import DetectionParams

from . import handlers as h
from .desk import key_help_html
from .handlers import AppContext
from .models import PRESET_CHOICES, needs_centroid
from .plots import comparison_figure, timeline_figure
from .state import Session
from .tab_review import ReviewerBox
from .wiring import PRIVATE, gpu_decorator, guard, options, session_id

BRANCH_CHOICES = [("model's default", h.MODEL_DEFAULT_BRANCH), ("C-branch", "c"), ("A-branch", "a"),
                  ("AnomalyCLIP score", "score")]


@dataclass
class AnalyseTab:
    """What other tabs use: the model choice, the segment table, and the events after which
    the review queue changed."""

    model: gr.Dropdown
    segments: gr.Dataframe
    queue_changed: list


def banner_html(random_weights: bool) -> str:
    """The red warning shown above scores from a CLIP with random weights."""
    if not random_weights:
        return ""
    return (f"<div class='vad-banner' id='random-banner'>⚠ {RANDOM_WEIGHTS_WARNING}<br>"
            "<small>These scores come from a CLIP with random weights (test / timing mode). "
            "Set VADCLIP_CLIP to real CLIP weights or choose a trained checkpoint.</small></div>")


def _timeline(session: Session):
    scores = session.scores
    return timeline_figure(scores, session.selected, RANDOM_WEIGHTS_WARNING if scores.random_weights else "")


def build_analyse_tab(ctx: AppContext, demo: gr.Blocks, session: gr.State,
                      reviewer: ReviewerBox | None = None) -> AnalyseTab:
    """The Analyse tab's components and events (call inside `gr.Tabs`); decisions are recorded
    with `reviewer`'s name (None: a hidden empty one, i.e. the login or anonymous)."""
    config = ctx.config
    vocab_names = list(ctx.vocabularies)
    first_normal, first_anomalies = h.preset_vocabulary(ctx, vocab_names[0])
    scanned = h.model_choices(ctx, Session())
    examples = sorted(str(p) for p in config.assets_dir.glob("*.mp4"))
    detect = DetectionParams()                       # the library's defaults

    with gr.Tab("Analyse", id="analyse", elem_id="tab-analyse"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video", height=300)
                if examples:
                    gr.Examples(examples=[[p] for p in examples], inputs=[video],
                                label="Examples (synthetic clips)", examples_per_page=6)
            with gr.Column(scale=6, min_width=360):
                with gr.Row():
                    model = gr.Dropdown(options(scanned), value=h.default_model(scanned), label="Model",
                                        scale=4, elem_id="model", allow_custom_value=False)
                    preset = gr.Dropdown(list(PRESET_CHOICES), value="auto", scale=1, label="Preset",
                                         info="official .pth / .ckpt only", min_width=110)
                with gr.Accordion("Upload a checkpoint (.pth / .ckpt / .safetensors)", open=False):
                    model_file = gr.File(label="Checkpoint", file_types=[".pth", ".pt", ".ckpt", ".safetensors"],
                                         elem_id="model-upload")
                    centroid_file = gr.File(label="Normal centroid of the chosen official AnomalyCLIP .ckpt "
                                                  "(its run's ncentroid.pt, or a [512] .npy)",
                                            file_types=[".pt", ".npy"], elem_id="centroid-upload")
                with gr.Group():
                    vocab_preset = gr.Dropdown(vocab_names, value=vocab_names[0], label="Vocabulary preset",
                                               elem_id="vocab-preset")
                    with gr.Row():
                        normal = gr.Textbox(first_normal, label="Normal class (index 0)", max_lines=1,
                                            scale=1, elem_id="normal")
                        anomalies = gr.Textbox(first_anomalies, lines=6, max_lines=16,
                                               label="Anomaly classes (one per line)", scale=2,
                                               elem_id="anomalies")
                with gr.Row():
                    samples = gr.Radio([str(n) for n in h.SAMPLES_PER_SNIPPET_CHOICES],
                                       value=str(h.DEFAULT_SAMPLES_PER_SNIPPET),
                                       label="Frames encoded per 16-frame snippet",
                                       info="16 = official features; fewer = faster on CPU; "
                                            "AnomalyCLIP encodes every frame")
                    branch = gr.Radio(BRANCH_CHOICES, value=detect.branch or h.MODEL_DEFAULT_BRANCH,
                                      label="Detection branch")
                threshold = gr.Slider(0, 1, value=detect.threshold, step=0.01, label="Threshold",
                                      info="snippets scoring at least this are flagged")
                with gr.Row():
                    min_gap = gr.Slider(0, 10, value=detect.min_gap_s, step=0.1,
                                        label="Merge gaps shorter than (s)")
                    min_duration = gr.Slider(0, 10, value=detect.min_duration_s, step=0.1,
                                             label="Drop segments shorter than (s)")
                with gr.Row():
                    analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse-btn", scale=2)
                    rescore_btn = gr.Button("Re-score (instant)", elem_id="rescore-btn", scale=1)
        banner = gr.HTML("", elem_id="banner")
        summary = gr.Markdown("", elem_id="summary")
        plot = gr.Plot(label="Timeline", elem_id="timeline", visible=False)
        with gr.Accordion("Compare with another model (same video, one timeline)", open=False,
                          elem_id="compare-panel"):
            with gr.Row():
                compare_model = gr.Dropdown(options(scanned), value=scanned[-1].key, label="Second model", scale=4,
                                            elem_id="compare-model", allow_custom_value=False)
                compare_preset = gr.Dropdown(list(PRESET_CHOICES), value="auto", scale=1, label="Preset",
                                             min_width=110)
                compare_btn = gr.Button("Compare", elem_id="compare-btn", scale=1)
            compare_summary = gr.Markdown("", elem_id="compare-summary")
            compare_plot = gr.Plot(label="Comparison", elem_id="compare-timeline", visible=False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                segments = gr.Dataframe(headers=h.SEGMENT_COLUMNS, value=[], interactive=False,
                                        label="Detected segments (select a row, or j / k, to play and review it)",
                                        elem_id="segment-table", type="array", wrap=True)
                with gr.Row():
                    quick_note = gr.Textbox(label="Note", placeholder="optional", scale=3,
                                            elem_id="quick-note", max_lines=1)
                    quick_confirm = gr.Button("Confirm (c)", variant="primary", scale=1,
                                              elem_id="quick-confirm", min_width=90)
                    quick_dismiss = gr.Button("Dismiss (d)", variant="stop", scale=1,
                                              elem_id="quick-dismiss", min_width=90)
                with gr.Row(equal_height=True):
                    quick_label = gr.Textbox(label="New class (r; Enter relabels)", max_lines=1, scale=3,
                                             elem_id="quick-label")
                    quick_relabel = gr.Button("Relabel", scale=1, elem_id="quick-relabel", min_width=90)
                gr.HTML(key_help_html("key-help-analyse"))
            with gr.Column(scale=4):
                preview_caption = gr.Markdown("Select a segment to see it.", elem_id="preview-caption")
                preview_strip = gr.Gallery(label="Frames of the segment", columns=6, height=130,
                                           elem_id="preview-strip", object_fit="contain")
        # API only (scripts, load tests): `/decide_segment(number, action, note)`
        api_segment = gr.Number(visible=False, precision=0)
        api_action = gr.Textbox(visible=False)
        api_reviewer = gr.Textbox(visible=False)
        api_trigger = gr.Button(visible=False)
        reviewer_name = reviewer.name if reviewer is not None else gr.Textbox(visible=False)

    # ------------------------------------------------------------------ analysis and re-scoring
    detect_inputs = [threshold, branch, min_gap, min_duration]
    rescore_inputs = [session, normal, anomalies, model, preset, *detect_inputs]
    view_outputs = [session, banner, summary, plot, segments, preview_caption, preview_strip]

    def view(sess: Session):
        return (sess, banner_html(sess.scores.random_weights), h.summary_markdown(sess.scores),
                gr.Plot(_timeline(sess), visible=True), h.segment_rows(ctx, sess),
                "Select a segment to see it.", None)

    @gpu_decorator()
    def run_analysis(sess, video_path, normal_text, anomaly_text, model_key, preset_name, samples_value,
                     thr, br, gap, dur, request: gr.Request, progress=gr.Progress()):
        params = h.detection_params(thr, br, gap, dur)
        with ctx.jobs.hold(session_id(request), "an analysis"):
            new = h.analyse(ctx, sess, video_path, normal_text, anomaly_text, model_key, preset_name,
                            int(samples_value), params,
                            on_progress=lambda stage, fraction: progress(fraction, desc=stage))
        return view(new)

    def run_rescore(sess, normal_text, anomaly_text, model_key, preset_name, thr, br, gap, dur):
        params = h.detection_params(thr, br, gap, dur)
        return view(h.rescore(ctx, sess, normal_text, anomaly_text, model_key, preset_name, params))

    def run_auto_rescore(sess, normal_text, anomaly_text, model_key, preset_name, thr, br, gap, dur):
        params = h.detection_params(thr, br, gap, dur)
        new = h.auto_rescore(ctx, sess, normal_text, anomaly_text, model_key, preset_name, params)
        return [gr.skip()] * len(view_outputs) if new is None else view(new)

    n_view = len(view_outputs)
    analysed = analyse_btn.click(
        guard(run_analysis, n_view), [session, video, normal, anomalies, model, preset, samples, *detect_inputs],
        view_outputs, concurrency_id="compute", concurrency_limit=config.concurrency, api_name="analyse")
    rescored = rescore_btn.click(guard(run_rescore, n_view), rescore_inputs, view_outputs,
                                 concurrency_id="compute", api_name="rescore")
    auto = dict(fn=guard(run_auto_rescore, n_view), inputs=rescore_inputs, outputs=view_outputs,
                show_progress="hidden", **PRIVATE)
    for slider in (threshold, min_gap, min_duration):
        slider.release(**auto)
    branch.change(**auto)
    vocab_preset.input(guard(lambda name: h.preset_vocabulary(ctx, name), 2), [vocab_preset],
                       [normal, anomalies], **PRIVATE).then(**auto)

    # ------------------------------------------------------------------ uploads
    def on_video_upload(path):
        try:
            h.check_video_upload(path)
        except UserError as e:            # clear the player and say why
            gr.Warning(str(e))
            return None
        return gr.skip()

    video.upload(on_video_upload, [video], [video], **PRIVATE)

    def add_model(sess, path):
        key = h.upload_model(ctx, sess, path)
        if needs_centroid(key):
            gr.Warning(f"{Path(key).name} added: an official AnomalyCLIP checkpoint needs its normal centroid; "
                       "upload the run's ncentroid.pt below")
        else:
            gr.Info(f"checkpoint added: {Path(key).name}")
        return sess, gr.Dropdown(choices=options(h.model_choices(ctx, sess)), value=key), None

    model_file.upload(guard(add_model, 3), [session, model_file], [session, model, model_file], **PRIVATE)

    def add_centroid(sess, model_key, path):
        written = h.upload_centroid(ctx, model_key, path)
        gr.Info(f"centroid stored as {written.name}")
        return gr.Dropdown(choices=options(h.model_choices(ctx, sess)), value=model_key), None

    # a fixed-vocabulary model (AnomalyCLIP) shows its trained classes in the vocabulary boxes
    def show_model_vocabulary(model_key, preset_name):
        boxes = h.model_vocabulary(ctx, model_key, preset_name)
        if boxes is None:
            return gr.skip(), gr.skip()
        gr.Info("this model knows exactly these classes: reword them if you like, but do not add or remove any")
        return boxes

    centroid_file.upload(guard(add_centroid, 2), [session, model, centroid_file], [model, centroid_file],
                         **PRIVATE).then(guard(show_model_vocabulary, 2), [model, preset], [normal, anomalies],
                                         **PRIVATE)
    model.input(guard(show_model_vocabulary, 2), [model, preset], [normal, anomalies], **PRIVATE)

    # ------------------------------------------------------------------ comparing two models
    @gpu_decorator()
    def run_compare(video_path, normal_text, anomaly_text, model_key, preset_name, other_key, other_preset,
                    samples_value, thr, br, gap, dur, request: gr.Request, progress=gr.Progress()):
        params = h.detection_params(thr, br, gap, dur)
        with ctx.jobs.hold(session_id(request), "a comparison"):
            result = h.compare(ctx, video_path, normal_text, anomaly_text,
                               [(model_key, preset_name), (other_key, other_preset)], int(samples_value), params,
                               on_progress=lambda stage, fraction: progress(fraction, desc=stage))
        warning = RANDOM_WEIGHTS_WARNING if any(s.random_weights for s in result.scores) else ""
        return h.comparison_markdown(result), gr.Plot(comparison_figure(result.scores, warning=warning), visible=True)

    compare_btn.click(guard(run_compare, 2),
                      [video, normal, anomalies, model, preset, compare_model, compare_preset, samples, *detect_inputs],
                      [compare_summary, compare_plot], concurrency_id="compute",
                      concurrency_limit=config.concurrency, api_name="compare")

    # ------------------------------------------------------------------ preview and quick decisions
    # the page seeks the player itself (app/desk.js); the server only sends the frame strip
    def preview(sess, evt: gr.SelectData):
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else int(evt.index)
        new, (strip, caption) = h.select_segment(sess, index)
        return new, caption, strip

    segments.select(guard(preview, 3), [session], [session, preview_caption, preview_strip],
                    show_progress="hidden", **PRIVATE)

    def quick_decide(action: str):
        def decide(sess, note_text, label_text, typed, request: gr.Request, profile: gr.OAuthProfile | None):
            record = h.decide_selected(ctx, sess, action, note_text, new_label=label_text,
                                       reviewer=ReviewerBox.who(typed, request, profile))
            gr.Info(f"segment #{sess.selected + 1} {record.status} (by {record.reviewer})")
            return h.segment_rows(ctx, sess), "", ""
        return decide

    quick_inputs, quick_outputs = [session, quick_note, quick_label, reviewer_name], [segments, quick_note, quick_label]
    decided = [button.click(guard(quick_decide(action), 3), quick_inputs, quick_outputs, **PRIVATE)
               for button, action in ((quick_confirm, "confirm"), (quick_dismiss, "dismiss"),
                                      (quick_relabel, "relabel"))]
    decided.append(quick_label.submit(guard(quick_decide("relabel"), 3), quick_inputs, quick_outputs, **PRIVATE))

    def decide_segment(sess, number, action, note_text, reviewer, request: gr.Request):
        h.decide_segment(ctx, sess, number, action, note_text,
                         reviewer=ReviewerBox.who(reviewer, request, None))
        return h.segment_rows(ctx, sess)

    api_trigger.click(guard(decide_segment, 1, user_errors="error"),
                      [session, api_segment, api_action, quick_note, api_reviewer],
                      [segments], api_name="decide_segment")

    # ------------------------------------------------------------------ page load: new checkpoints
    def refresh_models(sess):
        choices = options(h.model_choices(ctx, sess))
        return gr.Dropdown(choices=choices), gr.Dropdown(choices=choices)

    demo.load(guard(refresh_models, 2), [session], [model, compare_model], **PRIVATE)
    return AnalyseTab(model=model, segments=segments, queue_changed=[analysed, rescored, *decided])
