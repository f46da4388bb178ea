"""The Review queue tab: the filtered, sorted, paged queue; one segment's decision and history;
bulk decisions with a confirmation step; CSV / JSON export (API: `/export_reviews(format)`);
alert delivery failures. Also the reviewer box above the tabs (`build_reviewer_box`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import gradio as gr

from vadclip.errors import UserError

from . import handlers as h
from .desk import key_help_html
from .handlers import AppContext
from .review_db import BulkChanged
from .wiring import PRIVATE, guard, session_id

ACTION_BUTTONS = (("Confirm (c)", "confirm", "primary", "confirm-btn"),
                  ("Dismiss (d)", "dismiss", "stop", "dismiss-btn"),
                  ("Relabel", "relabel", "secondary", "relabel-btn"),
                  ("Back to pending", "reset", "secondary", "reset-btn"))
BULK_ACTIONS = [("confirm all", "confirm"), ("dismiss all", "dismiss"), ("relabel all", "relabel"),
                ("back to pending", "reset")]


# ---------------------------------------------------------------------------------------------
# who is reviewing

@dataclass
class ReviewerBox:
    """The reviewer's typed name (and, on a Space, the Hugging Face sign-in button)."""

    name: gr.Textbox

    @staticmethod
    def who(typed: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
        """The reviewer of a request: HF sign-in, else the `--auth` login, else the typed name."""
        return h.reviewer_name(getattr(profile, "username", None) if profile else None,
                               getattr(request, "username", None) if request is not None else None,
                               typed)


def build_reviewer_box() -> ReviewerBox:
    """The reviewer row above the tabs: a Hugging Face sign-in button on a Space (SPACE_ID set),
    and a name box for everyone else (a `--auth` login names the reviewer by itself)."""
    with gr.Row(equal_height=True):
        if os.environ.get("SPACE_ID"):
            gr.LoginButton(scale=0, min_width=180)
        name = gr.Textbox(label="Reviewer", placeholder="your name (decisions are recorded with it; "
                          "empty: anonymous)", max_lines=1, scale=3, elem_id="reviewer-name")
    return ReviewerBox(name=name)


# ---------------------------------------------------------------------------------------------
# the tab

@dataclass
class ReviewTab:
    filters: list                  # video, class, status, min score, max score, reviewer
    sort: gr.Dropdown
    page: gr.Number
    outputs: list                  # table, caption, page
    show: Callable                 # (filters..., sort, page) -> outputs

    def refresh_after(self, events: list) -> None:
        """Show the queue again after each of `events` (e.g. an analysis in another tab)."""
        for event in events:
            event.then(self.show, [*self.filters, self.sort, self.page], self.outputs, **PRIVATE)


def build_review_tab(ctx: AppContext, demo: gr.Blocks, session: gr.State, segments: gr.Dataframe,
                     reviewer: ReviewerBox) -> ReviewTab:
    """The Review queue tab (call inside `gr.Tabs`); `segments` is the Analyse tab's segment
    table, updated after a decision here."""
    with gr.Tab("Review queue", id="review", elem_id="tab-review"):
        with gr.Row():
            video_f = gr.Dropdown([("all videos", h.ALL)], value=h.ALL, label="Video", scale=2,
                                  elem_id="filter-video")
            label_f = gr.Dropdown([h.ALL], value=h.ALL, label="Class", scale=1, elem_id="filter-class")
            status_f = gr.Dropdown(list(h.REVIEW_FILTERS), value=h.ALL, label="Status", scale=1,
                                   elem_id="review-filter")
            reviewer_f = gr.Dropdown([h.ALL], value=h.ALL, label="Decided by", scale=1,
                                     elem_id="filter-reviewer")
            min_f = gr.Number(0.0, label="Score ≥", minimum=0, maximum=1, step=0.05, scale=1,
                              elem_id="filter-min")
            max_f = gr.Number(1.0, label="Score ≤", minimum=0, maximum=1, step=0.05, scale=1,
                              elem_id="filter-max")
            sort = gr.Dropdown(list(h.SORT_CHOICES), value=next(iter(h.SORT_CHOICES)), label="Sort",
                               scale=1, elem_id="queue-sort")
        with gr.Row(equal_height=True):
            prev_btn = gr.Button("◀ Previous page", scale=0, min_width=140, elem_id="page-prev")
            page = gr.Number(1, label="Page", precision=0, minimum=1, scale=0, min_width=90, elem_id="page")
            next_btn = gr.Button("Next page ▶", scale=0, min_width=140, elem_id="page-next")
            caption = gr.Markdown("", elem_id="queue-caption")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100, elem_id="queue-refresh")
            export_buttons = {fmt: gr.Button(f"Export {fmt.upper()}", scale=0, min_width=120,
                                             elem_id=f"export-{fmt}") for fmt in h.EXPORT_FORMATS}
        export_file = gr.File(label="Export (the filtered queue, with every decision's history)",
                              elem_id="export-file", visible=False)
        table = gr.Dataframe(
            headers=h.REVIEW_COLUMNS, value=[], interactive=False, type="array", wrap=True,
            datatype=["number", "markdown", "str", "number", "number", "str", "number", "number", "str",
                      "str", "str", "str"],
            label="Flagged segments (select a row, or j / k, to decide)", elem_id="review-table")
        gr.HTML(key_help_html("key-help-review"))
        selected_item = gr.State(None)
        with gr.Row(equal_height=True):
            selected_md = gr.Markdown("No segment selected.", elem_id="selected-item")
            new_label = gr.Textbox(label="New class (r; Enter relabels)", max_lines=1, elem_id="new-label")
            note = gr.Textbox(label="Note", max_lines=2, elem_id="review-note")
        with gr.Row():
            action_buttons = {action: gr.Button(text, variant=variant, elem_id=elem_id)
                              for text, action, variant, elem_id in ACTION_BUTTONS}
        with gr.Accordion("History of the selected segment", open=True):
            history_md = gr.Markdown("_Select a segment._", elem_id="item-history")
        with gr.Accordion("Bulk action on the filtered set", open=False, elem_id="bulk"):
            with gr.Row(equal_height=True):
                bulk_action = gr.Dropdown(BULK_ACTIONS, value="dismiss", label="Action", scale=1,
                                          elem_id="bulk-action")
                bulk_label = gr.Textbox(label="New class (relabel all)", max_lines=1, scale=1,
                                        elem_id="bulk-label")
                bulk_preview_btn = gr.Button("Preview", scale=0, min_width=110, elem_id="bulk-preview")
                bulk_apply_btn = gr.Button("Apply", variant="stop", scale=0, min_width=110,
                                           interactive=False, elem_id="bulk-apply")
            bulk_md = gr.Markdown("Filter the queue, choose an action, press *Preview*: nothing "
                                  "changes until you press *Apply*.", elem_id="bulk-summary")
        bulk_state = gr.State(None)                    # (QueueFilter, BulkPreview) once previewed
        with gr.Accordion("Alert deliveries that failed", open=False):
            alerts_md = gr.Markdown("", elem_id="alert-failures")
        # API only: `/export_reviews(format)` returns the whole queue as a file
        api_format = gr.Textbox(visible=False)
        api_export = gr.Button(visible=False)
        api_file = gr.File(visible=False)

    filters = [video_f, label_f, status_f, min_f, max_f, reviewer_f]
    queue_inputs = [*filters, sort, page]
    queue_outputs = [table, caption, page]

    def queue(video, label, status, lo, hi, who, sort_name, page_number):
        view = h.queue_view(ctx, h.queue_filter(video, label, status, lo, hi, who), sort_name, page_number)
        return view.rows, view.caption, view.page

    show = guard(queue, len(queue_outputs))

    def choices():
        found = h.filter_choices(ctx)
        return (gr.Dropdown(choices=found.videos), gr.Dropdown(choices=found.labels),
                gr.Dropdown(choices=found.reviewers), alert_failures_markdown(ctx))

    choice_outputs = [video_f, label_f, reviewer_f, alerts_md]

    def first_page(*values):
        return show(*values[:-1], 1)

    for box in filters + [sort]:
        box.change(first_page, queue_inputs, queue_outputs, **PRIVATE)
    page.submit(show, queue_inputs, queue_outputs, **PRIVATE)
    prev_btn.click(lambda *v: show(*v[:-1], max(1, int(v[-1] or 1) - 1)), queue_inputs, queue_outputs, **PRIVATE)
    next_btn.click(lambda *v: show(*v[:-1], int(v[-1] or 1) + 1), queue_inputs, queue_outputs, **PRIVATE)
    refresh_btn.click(show, queue_inputs, queue_outputs, **PRIVATE).then(
        guard(choices, len(choice_outputs)), None, choice_outputs, **PRIVATE)
    demo.load(show, queue_inputs, queue_outputs, **PRIVATE).then(
        guard(choices, len(choice_outputs)), None, choice_outputs, **PRIVATE)

    # ------------------------------------------------------------------ one segment
    def pick(rows, evt: gr.SelectData):
        row = evt.row_value if evt.row_value is not None else rows[evt.index[0]]
        record = h.review_item(ctx, row[0])
        return (record.id, h.item_markdown(record), record.new_label or "", record.note,
                h.history_markdown(record.history))

    table.select(guard(pick, 5), [table], [selected_item, selected_md, new_label, note, history_md], **PRIVATE)

    def review_action(action: str):
        def decide(item_id, label_text, note_text, typed, sess, video, label, status, lo, hi, who,
                   sort_name, page_number, request: gr.Request, profile: gr.OAuthProfile | None):
            record = h.decide(ctx, item_id, action, new_label=label_text, note=note_text,
                              reviewer=ReviewerBox.who(typed, request, profile))
            gr.Info(f"#{record.id}: {record.status} (by {record.reviewer})")
            return (*queue(video, label, status, lo, hi, who, sort_name, page_number),
                    h.item_markdown(record), h.history_markdown(record.history), h.segment_rows(ctx, sess))
        return decide

    decide_inputs = [selected_item, new_label, note, reviewer.name, session, *queue_inputs]
    decide_outputs = [*queue_outputs, selected_md, history_md, segments]
    for action, button in action_buttons.items():
        button.click(guard(review_action(action), len(decide_outputs)), decide_inputs, decide_outputs, **PRIVATE)
    new_label.submit(guard(review_action("relabel"), len(decide_outputs)), decide_inputs, decide_outputs,
                     **PRIVATE)

    # ------------------------------------------------------------------ bulk: preview, then apply
    def preview(video, label, status, lo, hi, who, action, label_text):
        filters_now = h.queue_filter(video, label, status, lo, hi, who)
        found = h.bulk_preview(ctx, filters_now, action, label_text)
        return (filters_now, found), h.bulk_markdown(found), gr.Button(interactive=found.count > 0)

    def apply(state, typed, note_text, request: gr.Request, profile: gr.OAuthProfile | None):
        if state is None:
            raise UserError("preview the bulk action first")
        filters_then, found = state
        try:
            n = h.bulk_apply(ctx, filters_then, found, ReviewerBox.who(typed, request, profile), note_text)
        except BulkChanged:
            gr.Warning("The selection changed since the preview: preview again.")
            return None, "**The selection changed since the preview: preview again.**", gr.Button(interactive=False)
        gr.Info(f"{n} segments decided")
        return None, f"Done: **{n}** segment{'s' if n != 1 else ''} decided.", gr.Button(interactive=False)

    bulk_outputs = [bulk_state, bulk_md, bulk_apply_btn]
    bulk_preview_btn.click(guard(preview, 3), [*filters, bulk_action, bulk_label], bulk_outputs, **PRIVATE)
    for box in [*filters, bulk_action, bulk_label]:          # a new selection needs a new preview
        box.change(lambda: (None, gr.Button(interactive=False)), None, [bulk_state, bulk_apply_btn], **PRIVATE)
    bulk_apply_btn.click(guard(apply, 3), [bulk_state, reviewer.name, note], bulk_outputs, **PRIVATE).then(
        show, queue_inputs, queue_outputs, **PRIVATE).then(
        lambda sess: h.segment_rows(ctx, sess), [session], [segments], **PRIVATE)

    # ------------------------------------------------------------------ exports
    def export(fmt: str):
        def write(video, label, status, lo, hi, who, sess, request: gr.Request):
            path = h.export_reviews(ctx, fmt, h.queue_filter(video, label, status, lo, hi, who), sess,
                                    ctx.session_dir(session_id(request)))
            return gr.File(str(path), visible=True)
        return write

    for fmt, button in export_buttons.items():
        button.click(guard(export(fmt), 1), [*filters, session], [export_file], **PRIVATE)

    def export_api(format, request: gr.Request):           # noqa: A002 (the API's parameter name)
        return str(h.export_reviews(ctx, format, None, None, ctx.session_dir(session_id(request))))

    api_export.click(guard(export_api, 1, user_errors="error"), [api_format], [api_file],
                     api_name="export_reviews")
    return ReviewTab(filters=filters, sort=sort, page=page, outputs=queue_outputs, show=show)


def alert_failures_markdown(ctx: AppContext) -> str:
    """The alerts that could not be delivered (most recent last), or what the alert setting is."""
    settings = ctx.alerter.settings
    if not settings.enabled:
        return "Alerts are off (set `VADCLIP_ALERT_URL` to send flagged segments to a webhook)."
    failures = ctx.alerter.failures()
    head = (f"Alerts go to `{settings.webhook_url}` for segments scoring ≥ {settings.min_score:.2f}; "
            f"{ctx.alerter.sent()} sent.")
    if not failures:
        return head + " No failure."
    lines = [f"- {f.at:%H:%M:%S} {f.video} {f.start_s:.1f} s {f.label}: {f.error} "
             f"(after {f.attempts} attempt{'s' if f.attempts != 1 else ''})" for f in failures]
    return head + f" **{len(failures)} failed:**\n" + "\n".join(lines)
