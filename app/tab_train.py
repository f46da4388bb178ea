"""The Train tab: feature lists under the data root, the preset's recipe, live curves and log,
cancel; the finished run joins the model choice. API: `/start_training`."""
from __future__ import annotations

import gradio as gr

from vadclip.config import PRESETS

from . import handlers as h
from .handlers import AppContext
from .plots import training_figure
from .state import Session
from .wiring import PRIVATE, guard, options


def build_train_tab(ctx: AppContext, demo: gr.Blocks, session: gr.State, model: gr.Dropdown) -> None:
    """The Train tab (call inside `gr.Tabs`); `model` is the Analyse tab's model choice, which
    gets the finished run."""
    preset_name = h.default_preset()
    recipe = h.recipe(preset_name)
    starts = h.init_choices(h.model_choices(ctx, Session()))
    files = h.training_file_choices(ctx)

    with gr.Tab("Train", id="train", elem_id="tab-train"):
        gr.Markdown(f"Feature lists (`*.csv`) and annotations (`*.txt`) are read under the data root "
                    f"`{ctx.config.training_root}`. Runs are written to the models folder and appear "
                    f"in the model choice when they finish.")
        with gr.Row():      # any path under the data root is accepted (the handler confines it)
            train_list = gr.Dropdown(files.lists, value=files.train, label="Training feature list",
                                     elem_id="train-list", allow_custom_value=True)
            test_list = gr.Dropdown([""] + files.lists, value=files.test, label="Test feature list (optional)",
                                    elem_id="test-list", allow_custom_value=True)
            annotations = gr.Dropdown([""] + files.annotations, value=files.annotation, label="Test annotations",
                                      elem_id="annotations", allow_custom_value=True)
            files_refresh = gr.Button("Refresh lists", scale=0, min_width=120)
        with gr.Row():
            preset = gr.Radio(list(PRESETS), value=preset_name, label="Preset")
            init = gr.Dropdown(options(starts), value=starts[0].key, label="Start from", elem_id="train-init")
        with gr.Row():
            epochs = gr.Number(recipe.epochs, label="Epochs", precision=0, minimum=1, elem_id="train-epochs")
            lr = gr.Number(recipe.lr, label="Learning rate", minimum=0, elem_id="train-lr")
            batch_size = gr.Number(recipe.batch_size, label="Batch size", precision=0, minimum=1,
                                   elem_id="train-batch")
            max_steps = gr.Number(0, label="Max steps (0 = no limit)", precision=0, minimum=0,
                                  elem_id="train-max-steps")
        with gr.Row():
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
        status = gr.Markdown("No training yet.", elem_id="train-status")
        plot = gr.Plot(label="Curves", elem_id="train-plot")
        log = gr.Textbox(label="Log", lines=8, max_lines=12, autoscroll=True, interactive=False,
                         elem_id="train-log")
        checkpoint = gr.File(label="Checkpoint", elem_id="train-checkpoint")
        timer = gr.Timer(1.0, active=False)

    def show_recipe(name):
        chosen = h.recipe(name)
        return chosen.epochs, chosen.lr, chosen.batch_size

    preset.change(guard(show_recipe, 3), [preset], [epochs, lr, batch_size], **PRIVATE)

    def show_files():
        files = h.training_file_choices(ctx)
        return (gr.Dropdown(choices=files.lists, value=files.train),
                gr.Dropdown(choices=[""] + files.lists, value=files.test),
                gr.Dropdown(choices=[""] + files.annotations, value=files.annotation))

    file_outputs = [train_list, test_list, annotations]
    files_refresh.click(guard(show_files, 3), None, file_outputs, **PRIVATE)

    def start(train_rel, test_rel, ann_rel, name, init_key, n_epochs, rate, batch, steps):
        h.start_training(ctx, train_rel, test_rel, ann_rel, name, init_key, n_epochs, rate, batch, max_steps=steps)
        return gr.Timer(active=True), "Training started…"

    start_btn.click(guard(start, 2), [train_list, test_list, annotations, preset, init, epochs, lr, batch_size,
                                      max_steps], [timer, status],
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

    demo.load(guard(on_load, 4), None, [*file_outputs, timer], **PRIVATE)
