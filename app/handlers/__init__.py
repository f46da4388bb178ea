"""What the app does, as plain Python functions (no Gradio here: testable without a browser).

One module per tab (`analysis`, `review`, `train`) over `context.AppContext`, what one running app
shares (model registry, review store, feature cache, trainer); per-tab state is an
`app.state.Session`. Problems the user can fix raise `vadclip.errors.UserError` (or a subclass
such as `VideoError`, `CheckpointError`, `VocabularyError`) with a one-line message that the page
shows as it is; anything else is a bug.

Every handler is importable from here: `from app import handlers as h; h.analyse(...)`.
"""
from .analysis import (DEFAULT_SAMPLES_PER_SNIPPET, MODEL_DEFAULT_BRANCH, SAMPLES_PER_SNIPPET_CHOICES,
                       SEGMENT_COLUMNS, analyse, auto_rescore, check_video_upload, decide_segment,
                       decide_selected, default_model, detection_params, model_choices, parse_vocabulary,
                       preset_vocabulary, rescore, segment_preview, segment_rows, select_segment,
                       summary_markdown, upload_model, vocabulary_boxes)
from .analysis import (Comparison, compare, compare_features, comparison_markdown, model_vocabulary,
                       upload_centroid)
from .context import AppContext, SessionJobs, load_vocabularies
from .review import (ALL, DEFAULT_PAGE_SIZE, EXPORT_FORMATS, REVIEW_ACTIONS, REVIEW_COLUMNS, REVIEW_FILTERS,
                     SORT_CHOICES, FilterChoices, QueueView, bulk_apply, bulk_markdown, bulk_preview, decide,
                     export_reviews, filter_choices, history_markdown, item_markdown, queue_filter, queue_view,
                     review_item, review_records, review_row, review_rows, reviewer_name,
                     fine_tune_on_reviews, fine_tune_markdown)
from .train import (TrainingFiles, TrainingView, cancel_training, default_preset, default_training_files,
                    init_choices, recipe, start_training, training_file_choices, training_files,
                    training_view)
from .train import (METHODS, AnomalyCLIPFiles, anomalyclip_file_choices, anomalyclip_presets, anomalyclip_recipe,
                    check_seeds, default_anomalyclip_files, start_anomalyclip_training)

__all__ = [
    "AppContext", "SessionJobs", "load_vocabularies",
    # analysis
    "SAMPLES_PER_SNIPPET_CHOICES", "DEFAULT_SAMPLES_PER_SNIPPET", "MODEL_DEFAULT_BRANCH", "SEGMENT_COLUMNS",
    "parse_vocabulary", "vocabulary_boxes", "preset_vocabulary", "detection_params", "model_choices", "default_model",
    "upload_model", "check_video_upload", "analyse", "rescore", "auto_rescore", "summary_markdown",
    "segment_rows", "segment_preview", "select_segment", "decide_selected", "decide_segment",
    "Comparison", "compare", "compare_features", "comparison_markdown", "model_vocabulary", "upload_centroid",
    # review
    "REVIEW_COLUMNS", "REVIEW_FILTERS", "REVIEW_ACTIONS", "EXPORT_FORMATS", "ALL", "SORT_CHOICES",
    "DEFAULT_PAGE_SIZE", "FilterChoices", "QueueView", "reviewer_name", "queue_filter", "filter_choices",
    "queue_view", "review_row", "review_records", "review_rows", "review_item", "item_markdown",
    "history_markdown", "decide", "bulk_preview", "bulk_markdown", "bulk_apply", "export_reviews",
    "fine_tune_on_reviews", "fine_tune_markdown",
    # train
    "TrainingFiles", "TrainingView", "default_preset", "recipe", "init_choices", "training_files",
    "default_training_files", "training_file_choices", "start_training", "cancel_training",
    "training_view", "METHODS", "AnomalyCLIPFiles", "anomalyclip_file_choices", "anomalyclip_presets",
    "anomalyclip_recipe", "check_seeds", "default_anomalyclip_files", "start_anomalyclip_training",
]
