"""The Gradio page: `build_demo(config)` wires `app.handlers` to components.

Everything shared (model registry, review database, feature cache, trainer) is created here, per
app, in an `AppContext`; per-tab state is a `gr.State(Session)`. Handlers raise ValueError
subclasses for problems the user can fix; `_guard` turns every exception into a one-line
`gr.Error` (never a traceback in the page).
"""
import functools
import logging
from pathlib import Path
from typing import Callable

import gradio as gr

from vadclip.clip_backbone import RANDOM_WEIGHTS_WARNING

from . import handlers as h
from .config import AppConfig
from .models import PRESET_CHOICES, ZERO_SHOT
from .plots import timeline_figure, training_figure
from .state import Session

log = logging.getLogger("vadclip.app")

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


def gpu_decorator(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` on a ZeroGPU Space (when the `spaces` package imports), else
    the identity."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def launch_options(config: AppConfig) -> dict:
    """Keyword arguments for `demo.launch` (theme, CSS, upload limit, readable folders: the
    example videos and the models folder, for checkpoint downloads; never the data folder)."""
    return dict(
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="rose"),
        css=CSS,
        max_file_size=f"{config.max_upload_mb:g}mb",
        allowed_paths=[str(config.assets_dir.resolve()), str(config.models_dir.resolve())],
        footer_links=[],
    )


def _guard(fn: Callable, n_outputs: int = 0) -> Callable:
    """Run a handler and show any failure as one clear line in the page, never a traceback.

    A problem the user can fix (ValueError, FileNotFoundError) becomes a warning toast and
    leaves the `n_outputs` outputs as they were; anything else is a bug: gr.Error with one line,
    the traceback goes to the server log.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as e:
            gr.Warning(str(e))
            if n_outputs == 0:
                return None
            return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))
        except Exception as e:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"unexpected error ({type(e).__name__}: {e})", print_exception=False) from None

    return wrapper


def _banner(scores) -> str:
    if scores is None or not scores.random_weights:
        return ""
    return (f"<div class='vad-banner' id='random-banner'>⚠ {RANDOM_WEIGHTS_WARNING}<br>"
            "<small>These scores come from a CLIP with random weights (test / timing mode). "
            "Set VADCLIP_CLIP to real CLIP weights or choose a trained checkpoint.</small></div>")


def _choices(ctx: h.AppContext, session: Session) -> list[tuple[str, str]]:
    return _as_options(h.model_choices(ctx, session))


def _as_options(choices: list[h.ModelChoice]) -> list[tuple[str, str]]:
    return [(c.label, c.key) for c in choices]


def _init_choices(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Training's "start from": a fresh adapter, or any checkpoint (zero-shot, listed last, is not one)."""
    return [("fresh adapter on VADCLIP_CLIP", ZERO_SHOT)] + choices[:-1]


def build_demo(config: AppConfig) -> gr.Blocks:
    """The whole app as a `gr.Blocks` (call `.queue(...)` and `.launch(**launch_options(config))`)."""
    ctx = h.AppContext.create(config)
    vocab_names = list(ctx.vocabularies)
    first_vocab = ctx.vocabularies[vocab_names[0]]
    scanned = h.model_choices(ctx, Session())
    initial_choices = _as_options(scanned)
    examples = sorted(str(p) for p in config.assets_dir.glob("*.mp4"))
    gpu = gpu_decorator()

    age_s = int(config.temp_max_age_min * 60)
    with gr.Blocks(title=TITLE, analytics_enabled=False,
                   delete_cache=(max(60, age_s // 4), age_s)) as demo:   # Gradio's own copies
        demo.vadclip_context = ctx          # for tests and clean shutdown
        session = gr.State(Session())
        gr.HTML(INTRO)

        with gr.Tabs(elem_id="tabs"):
            # ---------------------------------------------------------------- Analyse
            with gr.Tab("Analyse", id="analyse", elem_id="tab-analyse"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        video = gr.Video(label="Video", sources=["upload"], elem_id="video",
                                         height=300)
                        if examples:
                            gr.Examples(examples=[[p] for p in examples], inputs=[video],
                                        label="Examples (synthetic clips)", examples_per_page=6)
                    with gr.Column(scale=6, min_width=360):
                        with gr.Row():
                            model = gr.Dropdown(initial_choices, value=h.default_model(scanned), label="Model",
                                                scale=4, elem_id="model", allow_custom_value=False)
                            preset = gr.Dropdown(list(PRESET_CHOICES), value="auto", scale=1,
                                                 label="Preset", info="official .pth only",
                                                 min_width=110)
                        with gr.Accordion("Upload a checkpoint (.pth / .safetensors)", open=False):
                            model_file = gr.File(label="Checkpoint", file_types=[".pth", ".pt", ".safetensors"],
                                                 elem_id="model-upload")
                        with gr.Group():
                            vocab_preset = gr.Dropdown(vocab_names, value=vocab_names[0],
                                                       label="Vocabulary preset", elem_id="vocab-preset")
                            with gr.Row():
                                normal = gr.Textbox(first_vocab[0], label="Normal class (index 0)",
                                                    max_lines=1, scale=1, elem_id="normal")
                                anomalies = gr.Textbox("\n".join(first_vocab[1:]), lines=6, max_lines=16,
                                                       label="Anomaly classes (one per line)", scale=2,
                                                       elem_id="anomalies")
                        with gr.Row():
                            samples = gr.Radio([str(n) for n in h.SAMPLES_PER_SNIPPET_CHOICES],
                                               value=str(h.DEFAULT_SAMPLES_PER_SNIPPET),
                                               label="Frames encoded per 16-frame snippet",
                                               info="16 = official features; fewer = faster on CPU")
                            branch = gr.Radio([("C-branch", "c"), ("A-branch", "a")], value="c",
                                              label="Detection branch")
                        threshold = gr.Slider(0, 1, value=0.5, step=0.01, label="Threshold",
                                              info="snippets scoring at least this are flagged")
                        with gr.Row():
                            min_gap = gr.Slider(0, 10, value=1.0, step=0.1, label="Merge gaps shorter than (s)")
                            min_duration = gr.Slider(0, 10, value=1.0, step=0.1, label="Drop segments shorter than (s)")
                        with gr.Row():
                            analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse-btn", scale=2)
                            rescore_btn = gr.Button("Re-score (instant)", elem_id="rescore-btn", scale=1)
                banner = gr.HTML("", elem_id="banner")
                summary = gr.Markdown("", elem_id="summary")
                plot = gr.Plot(label="Timeline", elem_id="timeline", visible=False)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5):
                        segments = gr.Dataframe(headers=h.SEGMENT_COLUMNS, value=[], interactive=False,
                                                label="Detected segments (select a row to preview and review it)",
                                                elem_id="segment-table", type="array", wrap=True)
                        with gr.Row():
                            quick_note = gr.Textbox(label="Note", placeholder="optional", scale=3,
                                                    elem_id="quick-note", max_lines=1)
                            quick_confirm = gr.Button("Confirm", variant="primary", scale=1,
                                                      elem_id="quick-confirm", min_width=90)
                            quick_dismiss = gr.Button("Dismiss", variant="stop", scale=1,
                                                      elem_id="quick-dismiss", min_width=90)
                    with gr.Column(scale=4):
                        preview_caption = gr.Markdown("Select a segment to see it.", elem_id="preview-caption")
                        preview_strip = gr.Gallery(label="Frames of the segment", columns=6, height=130,
                                                   elem_id="preview-strip", object_fit="contain")
                        preview_clip = gr.Video(label="Segment clip", elem_id="preview-clip", height=220,
                                                interactive=False, autoplay=False)

            # ---------------------------------------------------------------- Review queue
            with gr.Tab("Review queue", id="review", elem_id="tab-review"):
                with gr.Row():
                    review_filter = gr.Dropdown(list(h.REVIEW_FILTERS), value="all", label="Show",
                                                scale=1, elem_id="review-filter")
                    refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
                    export_csv_btn = gr.Button("Export CSV", scale=0, min_width=120, elem_id="export-csv")
                    export_json_btn = gr.Button("Export JSON", scale=0, min_width=120, elem_id="export-json")
                export_file = gr.File(label="Export", elem_id="export-file", visible=False)
                review_table = gr.Dataframe(
                    headers=h.REVIEW_COLUMNS, value=[], interactive=False, type="array", wrap=True,
                    datatype=["number", "markdown", "str", "number", "number", "str", "number",
                              "str", "str", "str"],
                    label="Flagged segments (select a row to decide)", elem_id="review-table")
                selected_item = gr.State(None)
                with gr.Row(equal_height=True):
                    selected_md = gr.Markdown("No segment selected.", elem_id="selected-item")
                    new_label = gr.Textbox(label="New class (for Relabel)", max_lines=1, elem_id="new-label")
                    note = gr.Textbox(label="Note", max_lines=2, elem_id="review-note")
                with gr.Row():
                    confirm_btn = gr.Button("Confirm", variant="primary", elem_id="confirm-btn")
                    dismiss_btn = gr.Button("Dismiss", variant="stop", elem_id="dismiss-btn")
                    relabel_btn = gr.Button("Relabel", elem_id="relabel-btn")
                    reset_btn = gr.Button("Back to pending", elem_id="reset-btn")

            # ---------------------------------------------------------------- Training
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                gr.Markdown(f"Feature lists (`*.csv`) and annotations (`*.txt`) are read under the "
                            f"data root `{config.training_root}`. Runs are written to the models "
                            f"folder and appear in the model choice when they finish.")
                with gr.Row():
                    train_list = gr.Dropdown([], label="Training feature list", elem_id="train-list")
                    test_list = gr.Dropdown([], label="Test feature list (optional)", elem_id="test-list")
                    annotations_file = gr.Dropdown([], label="Test annotations", elem_id="annotations")
                    files_refresh = gr.Button("Refresh lists", scale=0, min_width=120)
                with gr.Row():
                    train_preset = gr.Radio(["xd", "ucf"], value="xd", label="Preset")
                    init = gr.Dropdown(_init_choices(initial_choices),
                                       value=ZERO_SHOT, label="Start from", elem_id="train-init")
                with gr.Row():
                    epochs = gr.Number(10, label="Epochs", precision=0, minimum=1, elem_id="train-epochs")
                    lr = gr.Number(1e-5, label="Learning rate", minimum=0, elem_id="train-lr")
                    batch_size = gr.Number(96, label="Batch size", precision=0, minimum=1, elem_id="train-batch")
                    max_steps = gr.Number(0, label="Max steps (0 = no limit)", precision=0, minimum=0,
                                          elem_id="train-max-steps")
                with gr.Row():
                    start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
                train_status = gr.Markdown("No training yet.", elem_id="train-status")
                train_plot = gr.Plot(label="Curves", elem_id="train-plot")
                train_log = gr.Textbox(label="Log", lines=8, max_lines=12, autoscroll=True,
                                       interactive=False, elem_id="train-log")
                train_ckpt = gr.File(label="Checkpoint", elem_id="train-checkpoint")
                timer = gr.Timer(1.0, active=False)

            with gr.Tab("About", id="about"):
                gr.Markdown(_about(config, ctx.device))

        # ------------------------------------------------------------------ wiring: analysis
        detect_inputs = [threshold, branch, min_gap, min_duration]
        view_outputs = [session, banner, summary, plot, segments, preview_caption, preview_strip,
                        preview_clip]

        def view(sess: Session):
            scores = sess.scores
            figure = timeline_figure(scores, sess.selected,
                                     RANDOM_WEIGHTS_WARNING if scores.random_weights else "")
            return (sess, _banner(scores), h.summary_markdown(scores), gr.Plot(figure, visible=True),
                    h.segment_rows(ctx, sess), "Select a segment to see it.", None, None)

        @gpu
        def run_analysis(sess, video_path, normal_text, anomaly_text, model_key, preset_name,
                         samples_value, thr, br, gap, dur, request: gr.Request, progress=gr.Progress()):
            params = h.detection_params(thr, br, gap, dur)
            ctx.temp.sweep()
            with ctx.jobs.hold(_session_id(request), "an analysis"):
                new = h.analyse(ctx, sess, video_path, normal_text, anomaly_text, model_key, preset_name,
                                int(samples_value), params,
                                on_progress=lambda stage, fraction: progress(fraction, desc=stage))
            return view(new)

        def run_rescore(sess, normal_text, anomaly_text, model_key, preset_name, thr, br, gap, dur):
            params = h.detection_params(thr, br, gap, dur)
            return view(h.rescore(ctx, sess, normal_text, anomaly_text, model_key, preset_name, params))

        def auto_rescore(sess, *args):
            if sess.scores is None:       # nothing analysed yet: settings apply to the next run
                return [gr.skip()] * len(view_outputs)
            return run_rescore(sess, *args)

        analyse_event = analyse_btn.click(
            _guard(run_analysis, len(view_outputs)),
            [session, video, normal, anomalies, model, preset, samples, *detect_inputs], view_outputs,
            concurrency_id="compute", concurrency_limit=config.concurrency, api_name="analyse")
        rescore_inputs = [session, normal, anomalies, model, preset, *detect_inputs]
        rescore_btn.click(_guard(run_rescore, len(view_outputs)), rescore_inputs, view_outputs,
                          concurrency_id="compute", api_name="rescore")
        for slider in (threshold, min_gap, min_duration):
            slider.release(_guard(auto_rescore, len(view_outputs)), rescore_inputs, view_outputs, show_progress="hidden")
        branch.change(_guard(auto_rescore, len(view_outputs)), rescore_inputs, view_outputs, show_progress="hidden")

        def fill_vocabulary(name, sess):
            names = ctx.vocabularies[name]
            return h.vocabulary_boxes(names)

        vocab_preset.input(fill_vocabulary, [vocab_preset, session], [normal, anomalies]).then(
            _guard(auto_rescore, len(view_outputs)), rescore_inputs, view_outputs, show_progress="hidden")

        def on_upload(path):
            try:
                h.check_video_upload(path)
            except ValueError as e:        # clear the player and say why
                gr.Warning(str(e))
                return None
            return gr.skip()

        video.upload(on_upload, [video], [video])

        def add_model(sess, path):
            key = h.upload_model(ctx, sess, path)
            gr.Info(f"checkpoint added: {Path(key).name}")
            choices = _choices(ctx, sess)
            return sess, gr.Dropdown(choices=choices, value=key), None

        model_file.upload(_guard(add_model, 3), [session, model_file], [session, model, model_file])

        def preview(sess, evt: gr.SelectData, request: gr.Request):
            index = evt.index[0] if isinstance(evt.index, (list, tuple)) else int(evt.index)
            ctx.temp.sweep()
            strip, clip, caption = h.segment_preview(sess, index, ctx.temp.session_dir(_session_id(request)))
            sess.selected = index
            figure = timeline_figure(sess.scores, index,
                                     RANDOM_WEIGHTS_WARNING if sess.scores.random_weights else "")
            return sess, caption, strip, str(clip), figure

        segments.select(_guard(preview, 5), [session], [session, preview_caption, preview_strip,
                                                     preview_clip, plot])

        def quick_decide(action):
            def decide(sess, note_text):
                if sess.scores is None or sess.selected is None:
                    raise h.AppError("select a segment in the table first")
                record = h.decide(ctx, sess.review_ids[sess.selected], action, note=note_text)
                gr.Info(f"segment #{sess.selected + 1} {record.status}")
                return h.segment_rows(ctx, sess), ""
            return decide

        for button, action in ((quick_confirm, "confirm"), (quick_dismiss, "dismiss")):
            button.click(_guard(quick_decide(action), 2), [session, quick_note], [segments, quick_note]).then(
                _guard(lambda status: h.review_rows(ctx, status), 1), [review_filter], [review_table])

        analyse_event.then(_guard(lambda status: h.review_rows(ctx, status), 1), [review_filter], [review_table])

        # API only (scripts, load tests): decide segment `number` (1-based) of this session's
        # analysis, as the Confirm / Dismiss buttons do for the selected row.
        api_segment = gr.Number(visible=False, precision=0)
        api_action = gr.Textbox(visible=False)
        api_trigger = gr.Button(visible=False)

        def decide_segment(sess, number, action, note_text):
            if sess.scores is None or not sess.review_ids:
                raise gr.Error("this session has no analysed segments", print_exception=False)
            index = int(number or 0) - 1
            if not 0 <= index < len(sess.review_ids):
                raise gr.Error(f"no segment #{index + 1}", print_exception=False)
            try:
                h.decide(ctx, sess.review_ids[index], str(action), note=note_text)
            except ValueError as e:       # the caller is a script: an error it sees, not a toast
                raise gr.Error(str(e), print_exception=False) from None
            return h.segment_rows(ctx, sess)

        api_trigger.click(decide_segment, [session, api_segment, api_action, quick_note], [segments],
                          api_name="decide_segment")

        # ------------------------------------------------------------------ wiring: review
        def show_reviews(status):
            return h.review_rows(ctx, status)

        review_filter.change(_guard(show_reviews, 1), [review_filter], [review_table])
        refresh_btn.click(_guard(show_reviews, 1), [review_filter], [review_table])

        def pick_item(rows, evt: gr.SelectData):
            row = evt.row_value if evt.row_value is not None else rows[evt.index[0]]
            record = ctx.store.get(int(row[0]))
            if record is None:
                raise h.AppError("this segment is no longer in the queue: refresh")
            text = (f"**#{record.id} · {record.video}** {record.start_s:.1f}-{record.end_s:.1f} s · "
                    f"{record.label} ({record.confidence:.2f}) · **{record.status}**")
            return record.id, text, record.new_label or "", record.note

        review_table.select(_guard(pick_item, 4), [review_table], [selected_item, selected_md, new_label, note])

        def review_action(action):
            def decide(item_id, label_text, note_text, status, sess):
                record = h.decide(ctx, item_id, action, new_label=label_text, note=note_text)
                gr.Info(f"#{record.id}: {record.status}")
                text = (f"**#{record.id} · {record.video}** {record.start_s:.1f}-{record.end_s:.1f} s · "
                        f"{record.final_label} · **{record.status}**")
                return h.review_rows(ctx, status), text, h.segment_rows(ctx, sess)
            return decide

        for button, action in ((confirm_btn, "confirm"), (dismiss_btn, "dismiss"),
                               (relabel_btn, "relabel"), (reset_btn, "reset")):
            button.click(_guard(review_action(action), 3), [selected_item, new_label, note, review_filter, session],
                         [review_table, selected_md, segments])

        def do_export(fmt):
            def export(status, sess, request: gr.Request):
                ctx.temp.sweep()
                path = h.export_reviews(ctx, fmt, status, sess, ctx.temp.session_dir(_session_id(request)))
                return gr.File(str(path), visible=True)
            return export

        export_csv_btn.click(_guard(do_export("csv"), 1), [review_filter, session], [export_file])
        export_json_btn.click(_guard(do_export("json"), 1), [review_filter, session], [export_file])

        # ------------------------------------------------------------------ wiring: training
        def refresh_files():
            lists, anns = h.training_files(ctx)
            train_default, test_default, ann_default = h.default_training_files(lists, anns)
            return (gr.Dropdown(choices=lists, value=train_default),
                    gr.Dropdown(choices=[""] + lists, value=test_default),
                    gr.Dropdown(choices=[""] + anns, value=ann_default))

        train_preset.change(lambda name: h.recipe_defaults(name), [train_preset], [epochs, lr, batch_size])
        files_refresh.click(_guard(refresh_files, 3), None, [train_list, test_list, annotations_file])

        def start(train_rel, test_rel, ann_rel, preset_name, init_key, n_epochs, rate, batch, steps):
            h.start_training(ctx, train_rel, test_rel or None, ann_rel or None, preset_name, init_key,
                             n_epochs, rate, batch, max_steps=steps or None)
            return gr.Timer(active=True), "Training started…"

        start_btn.click(_guard(start, 2), [train_list, test_list, annotations_file, train_preset, init,
                                        epochs, lr, batch_size, max_steps], [timer, train_status],
                        concurrency_id="compute", api_name="start_training")

        def cancel():
            if not ctx.trainer.cancel():
                raise h.AppError("no training is running")
            return "Stopping at the next step…"

        cancel_btn.click(_guard(cancel, 1), None, [train_status])

        def poll(sess):
            snap = ctx.trainer.snapshot()
            if snap is None:
                return gr.Timer(active=False), "No training yet.", None, "", None, gr.skip(), gr.skip()
            status = f"**{snap.state}** · {snap.elapsed_s:.0f} s · run folder `{snap.out_dir.name}`"
            checkpoint = str(snap.checkpoint) if snap.checkpoint and snap.checkpoint.is_file() else None
            if snap.running:
                return (gr.Timer(active=True), status, training_figure(snap.events), snap.log, None,
                        gr.skip(), gr.skip())
            choices = _choices(ctx, sess)
            return (gr.Timer(active=False), status, training_figure(snap.events), snap.log, checkpoint,
                    gr.Dropdown(choices=choices), gr.Dropdown(choices=_init_choices(choices)))

        timer.tick(_guard(poll, 7), [session], [timer, train_status, train_plot, train_log, train_ckpt, model, init],
                   show_progress="hidden")

        # ------------------------------------------------------------------ page load
        def on_load(sess, status):
            snap = ctx.trainer.snapshot()
            return (h.review_rows(ctx, status), gr.Dropdown(choices=_choices(ctx, sess)),
                    *refresh_files(), gr.Timer(active=snap is not None))

        demo.load(_guard(on_load, 6), [session, review_filter],
                  [review_table, model, train_list, test_list, annotations_file, timer])

        def on_unload(request: gr.Request):
            ctx.end_session(_session_id(request))

        demo.unload(on_unload)
    return demo


def _session_id(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _about(config: AppConfig, device: str) -> str:
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
