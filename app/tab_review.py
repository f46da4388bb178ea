"""The Review queue tab: every flagged segment, moderators' decisions, CSV / JSON export."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gradio as gr

from . import handlers as h
from .handlers import AppContext
from .wiring import PRIVATE, guard, session_id

ACTION_BUTTONS = (("Confirm", "confirm", "primary", "confirm-btn"), ("Dismiss", "dismiss", "stop", "dismiss-btn"),
                  ("Relabel", "relabel", "secondary", "relabel-btn"),
                  ("Back to pending", "reset", "secondary", "reset-btn"))


@dataclass
class ReviewTab:
    status_filter: gr.Dropdown
    table: gr.Dataframe
    show: Callable                 # the queue table's rows for the filter

    def refresh_after(self, events: list) -> None:
        """Show the queue again after each of `events` (e.g. an analysis in another tab)."""
        for event in events:
            event.then(self.show, [self.status_filter], [self.table], **PRIVATE)


def build_review_tab(ctx: AppContext, demo: gr.Blocks, session: gr.State, segments: gr.Dataframe) -> ReviewTab:
    """The Review queue tab (call inside `gr.Tabs`); `segments` is the Analyse tab's segment
    table, updated after a decision here."""
    with gr.Tab("Review queue", id="review", elem_id="tab-review"):
        with gr.Row():
            status_filter = gr.Dropdown(list(h.REVIEW_FILTERS), value="all", label="Show", scale=1,
                                        elem_id="review-filter")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
            export_buttons = {fmt: gr.Button(f"Export {fmt.upper()}", scale=0, min_width=120,
                                             elem_id=f"export-{fmt}") for fmt in h.EXPORT_FORMATS}
        export_file = gr.File(label="Export", elem_id="export-file", visible=False)
        table = gr.Dataframe(
            headers=h.REVIEW_COLUMNS, value=[], interactive=False, type="array", wrap=True,
            datatype=["number", "markdown", "str", "number", "number", "str", "number", "str", "str", "str"],
            label="Flagged segments (select a row to decide)", elem_id="review-table")
        selected_item = gr.State(None)
        with gr.Row(equal_height=True):
            selected_md = gr.Markdown("No segment selected.", elem_id="selected-item")
            new_label = gr.Textbox(label="New class (for Relabel)", max_lines=1, elem_id="new-label")
            note = gr.Textbox(label="Note", max_lines=2, elem_id="review-note")
        with gr.Row():
            action_buttons = {action: gr.Button(text, variant=variant, elem_id=elem_id)
                              for text, action, variant, elem_id in ACTION_BUTTONS}

    show = guard(lambda status: h.review_rows(ctx, status), 1)
    status_filter.change(show, [status_filter], [table], **PRIVATE)
    refresh_btn.click(show, [status_filter], [table], **PRIVATE)
    demo.load(show, [status_filter], [table], **PRIVATE)

    def pick(rows, evt: gr.SelectData):
        row = evt.row_value if evt.row_value is not None else rows[evt.index[0]]
        record = h.review_item(ctx, row[0])
        return record.id, h.item_markdown(record), record.new_label or "", record.note

    table.select(guard(pick, 4), [table], [selected_item, selected_md, new_label, note], **PRIVATE)

    def review_action(action: str):
        def decide(item_id, label_text, note_text, status, sess):
            record = h.decide(ctx, item_id, action, new_label=label_text, note=note_text)
            gr.Info(f"#{record.id}: {record.status}")
            return h.review_rows(ctx, status), h.item_markdown(record), h.segment_rows(ctx, sess)
        return decide

    for action, button in action_buttons.items():
        button.click(guard(review_action(action), 3), [selected_item, new_label, note, status_filter, session],
                     [table, selected_md, segments], **PRIVATE)

    def export(fmt: str):
        def write(status, sess, request: gr.Request):
            path = h.export_reviews(ctx, fmt, status, sess, ctx.session_dir(session_id(request)))
            return gr.File(str(path), visible=True)
        return write

    for fmt, button in export_buttons.items():
        button.click(guard(export(fmt), 1), [status_filter, session], [export_file], **PRIVATE)
    return ReviewTab(status_filter=status_filter, table=table, show=show)
