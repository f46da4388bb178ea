"""The Train tab: VadCLIP or AnomalyCLIP, lists and folders under the data root, the preset's recipe,
an optional seeds box, live curves and log, cancel; the finished run joins the model choice.
API: `/start_training`."""
from __future__ import annotations

import gradio as gr

from vadclip.config import PRESETS

from . import handlers as h
from .handlers import AppContext
from .plots import training_figure
from .state import Session
from .wiring import PRIVATE, guard, options

VADCLIP, ANOMALYCLIP = "VadCLIP", "AnomalyCLIP"


def build_train_tab(ctx: AppContext, demo: gr.Blocks, session: gr.State, model: gr.Dropdown) -> None:
    """The Train tab (call inside `gr.Tabs`); `model` is the Analyse tab's model choice, which
    gets the finished run."""
    preset_name = h.default_preset()
    recipe = h.recipe(preset_name)
    starts = h.init_choices(h.model_choices(ctx, Session()))
    files = h.training_file_choices(ctx)
    ac_files = h.anomalyclip_file_choices(ctx)

    with gr.Tab("Train", id="train", elem_id="tab-train"):
        gr.Markdown(f"Lists, annotations and feature folders are read under the data root "
                    f"`{ctx.config.training_root}`. Runs are written to the models folder and appear "
                    f"in the model choice when they finish.")
        method = gr.Radio([VADCLIP, ANOMALYCLIP], value=VADCLIP, label="Method", elem_id="train-method")
        with gr.Group(visible=True) as vadclip_box:
            with gr.Row():      # any path under the data root is accepted (the handler confines it)
                train_list = gr.Dropdown(files.lists, value=files.train, label="Training feature list",
                                         elem_id="train-list", allow_custom_value=True)
                test_list = gr.Dropdown([""] + files.lists, value=files.test, label="Test feature list (optional)",
                                        elem_id="test-list", allow_custom_value=True)
                annotations = gr.Dropdown([""] + files.annotations, value=files.annotation,
                                          label="Test annotations", elem_id="annotations", allow_custom_value=True)
            with gr.Row():
                features_root = gr.Dropdown([""] + ac_files.folders, value="", allow_custom_value=True,
                                            label="Features root (optional: listed files not found are looked "
                                                  "up by name under it)", elem_id="train-features-root")
                init = gr.Dropdown(options(starts), value=starts[0].key, label="Start from", elem_id="train-init")
        with gr.Group(visible=False) as anomalyclip_box:
            with gr.Row():
                ac_normal = gr.Dropdown([""] + ac_files.texts, value=ac_files.normal, allow_custom_value=True,
                                        label="Normal training list (Anomaly_Train_Normal.txt)", elem_id="ac-normal")
                ac_abnormal = gr.Dropdown([""] + ac_files.texts, value=ac_files.abnormal, allow_custom_value=True,
                                          label="Abnormal training list (Anomaly_Train_Abnormal.txt)",
                                          elem_id="ac-abnormal")
                ac_test = gr.Dropdown([""] + ac_files.texts, value=ac_files.test, allow_custom_value=True,
                                      label="Test list (optional; Anomaly_Test.txt)", elem_id="ac-test")
            with gr.Row():
                ac_annotations = gr.Dropdown([""] + ac_files.texts, value=ac_files.annotation, allow_custom_value=True,
                                             label="Temporal test annotation", elem_id="ac-annotations")
                ac_features = gr.Dropdown([""] + ac_files.folders, value=ac_files.features_root,
                                          allow_custom_value=True, label="Features root (<root>/<PATH>.npy)",
                                          elem_id="ac-features-root")
        with gr.Row():
            preset = gr.Radio(list(PRESETS), value=preset_name, label="Preset", elem_id="train-preset")
            files_refresh = gr.Button("Refresh lists", scale=0, min_width=120)
        with gr.Row():
            epochs = gr.Number(recipe.epochs, label="Epochs", precision=0, minimum=1, elem_id="train-epochs")
            lr = gr.Number(recipe.lr, label="Learning rate", minimum=0, elem_id="train-lr")
            batch_size = gr.Number(recipe.batch_size, label="Batch size", precision=0, minimum=1,
                                   elem_id="train-batch")
            max_steps = gr.Number(0, label="Max steps (0 = no limit)", precision=0, minimum=0,
                                  elem_id="train-max-steps")
            warmup_epochs = gr.Number(0, label="Warm-up epochs", precision=0, minimum=0, visible=False,
                                      elem_id="train-warmup")
            seeds = gr.Textbox("", label="Seeds (optional: 0,1,2 = one run per seed and a summary)",
                               elem_id="train-seeds")
        with gr.Row():
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
        status = gr.Markdown("No training yet.", elem_id="train-status")
        plot = gr.Plot(label="Curves", elem_id="train-plot")
        log = gr.Textbox(label="Log", lines=8, max_lines=12, autoscroll=True, interactive=False,
                         elem_id="train-log")
        checkpoint = gr.File(label="Checkpoint", elem_id="train-checkpoint")
        timer = gr.Timer(1.0, active=False)
        with gr.Accordion("Fine-tune from reviews (VadCLIP)", open=False, elem_id="reviews-section"):
            gr.Markdown("Moderators' decisions become training data: reviewed videos whose features are "
                        "cached (confirmed segments abnormal with their final class, dismissed and "
                        "unflagged ones normal) fine-tune the *Start from* checkpoint with the batch size "
                        "and max steps above; part of the reviewed videos is held out and scored before "
                        "and after.")
            with gr.Row():
                reviews_holdout = gr.Slider(0.1, 0.5, value=0.3, step=0.05, label="Held-out share of reviewed videos",
                                            elem_id="reviews-holdout")
                reviews_btn = gr.Button("Fine-tune on reviewed videos", variant="primary", elem_id="reviews-start")
            reviews_md = gr.Markdown("", elem_id="reviews-result")

    def show_recipe(chosen_method, name):
        if chosen_method == ANOMALYCLIP:
            r = h.anomalyclip_recipe(name)
            return r.epochs, r.lr, r.batch_size, r.warmup_epochs
        r = h.recipe(name)
        return r.epochs, r.lr, r.batch_size, gr.skip()

    recipe_outputs = [epochs, lr, batch_size, warmup_epochs]
    preset.change(guard(show_recipe, 4), [method, preset], recipe_outputs, **PRIVATE)

    def show_method(chosen_method):
        ac = chosen_method == ANOMALYCLIP
        names = h.anomalyclip_presets() if ac else list(PRESETS)
        name = names[0]
        return (gr.Group(visible=not ac), gr.Group(visible=ac), gr.Radio(choices=names, value=name),
                gr.Number(visible=not ac), gr.Number(visible=ac), *show_recipe(chosen_method, name))

    method.change(guard(show_method, 9), [method],
                  [vadclip_box, anomalyclip_box, preset, max_steps, warmup_epochs, *recipe_outputs], **PRIVATE)

    def show_files():
        files = h.training_file_choices(ctx)
        ac = h.anomalyclip_file_choices(ctx)
        texts = [""] + ac.texts
        return (gr.Dropdown(choices=files.lists, value=files.train),
                gr.Dropdown(choices=[""] + files.lists, value=files.test),
                gr.Dropdown(choices=[""] + files.annotations, value=files.annotation),
                gr.Dropdown(choices=[""] + ac.folders),
                gr.Dropdown(choices=texts, value=ac.normal), gr.Dropdown(choices=texts, value=ac.abnormal),
                gr.Dropdown(choices=texts, value=ac.test), gr.Dropdown(choices=texts, value=ac.annotation),
                gr.Dropdown(choices=[""] + ac.folders, value=ac.features_root))

    file_outputs = [train_list, test_list, annotations, features_root, ac_normal, ac_abnormal, ac_test,
                    ac_annotations, ac_features]
    files_refresh.click(guard(show_files, len(file_outputs)), None, file_outputs, **PRIVATE)

    def start(train_rel, test_rel, ann_rel, name, init_key, n_epochs, rate, batch, steps, chosen_method, root_rel,
              normal_rel, abnormal_rel, ac_test_rel, ac_ann_rel, ac_root_rel, warmup, seed_text):
        if chosen_method == ANOMALYCLIP:
            h.start_anomalyclip_training(ctx, normal_rel, abnormal_rel, ac_test_rel, ac_ann_rel, ac_root_rel, name,
                                         n_epochs, rate, batch, warmup_epochs=warmup, seeds=seed_text)
        else:
            h.start_training(ctx, train_rel, test_rel, ann_rel, name, init_key, n_epochs, rate, batch,
                             max_steps=steps, features_root=root_rel, seeds=seed_text)
        return gr.Timer(active=True), "Training started…"

    # API order: the VadCLIP inputs first (as before AnomalyCLIP came), then the method and the rest
    def from_reviews(init_key, name, share, batch, steps, sess):
        result = h.fine_tune_on_reviews(ctx, init_key, name, share, batch, steps)
        choices = h.model_choices(ctx, sess)                  # the new run joins the model choice
        return h.fine_tune_markdown(result), gr.Dropdown(choices=options(choices))

    reviews_btn.click(guard(from_reviews, 2), [init, preset, reviews_holdout, batch_size, max_steps, session],
                      [reviews_md, model], concurrency_id="compute", **PRIVATE)

    start_btn.click(guard(start, 2), [train_list, test_list, annotations, preset, init, epochs, lr, batch_size,
                                      max_steps, method, features_root, ac_normal, ac_abnormal, ac_test,
                                      ac_annotations, ac_features, warmup_epochs, seeds], [timer, status],
                    concurrency_id="compute", api_name="start_training")
    cancel_btn.click(guard(lambda: h.cancel_training(ctx), 1), None, [status], **PRIVATE)

    def poll(sess):
        view = h.training_view(ctx)
        figure = training_figure(view.events) if view.started else None
        if view.running or not view.started:
            return (gr.Timer(active=view.running), view.status, figure, view.log, None, gr.skip(), gr.skip())
        choices = h.model_choices(ctx, sess)           # the finished run is a new model
        return (gr.Timer(active=False), view.status, figure, view.log, view.checkpoint,
                gr.Dropdown(choices=options(choices)), gr.Dropdown(choices=options(h.init_choices(choices))))

    timer.tick(guard(poll, 7), [session], [timer, status, plot, log, checkpoint, model, init],
               show_progress="hidden", **PRIVATE)

    def on_load():
        return (*show_files(), gr.Timer(active=h.training_view(ctx).started))

    demo.load(guard(on_load, len(file_outputs) + 1), None, [*file_outputs, timer], **PRIVATE)
