"""The timeline figure: coarse anomaly scores over time, detected segments, fine-grained heat map;
the comparison figure: several models' curves and segments on one time axis.

Drawing only: a long per-frame result (AnomalyCLIP: one row per frame, 18,000 rows for 10 min at
30 fps) is pooled to at most `MAX_POINTS` columns per trace, curves by their maximum (no peak is
lost) and class probabilities by their mean; segments and scores are not changed.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vadclip.results import VideoScores

BRANCH_NAMES = {"c": "C-branch (anomaly score)", "a": "A-branch (1 − P(normal))",
                "score": "AnomalyCLIP score (per frame)"}
MAX_POINTS = 2000           # columns drawn per trace at most (drawing only)
_BRANCH_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")     # by position in scores.branches
# Qualitative colours for segment classes (cycled).
_CLASS_COLOURS = ("#e45756", "#f58518", "#54a24b", "#b279a2", "#4c78a8", "#9d755d", "#eeca3b",
                  "#72b7b2", "#ff9da6", "#bab0ac")


def class_colour(class_names: list[str], label: str) -> str:
    """A stable colour per anomaly class of the vocabulary."""
    try:
        index = class_names.index(label) - 1
    except ValueError:
        index = len(class_names)
    return _CLASS_COLOURS[max(index, 0) % len(_CLASS_COLOURS)]


def pooled_rows(scores: VideoScores, max_points: int = MAX_POINTS
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(start_s, end_s, curves, fine) with at most `max_points` rows: groups of ceil(N / max_points)
    consecutive rows, curves by their maximum, class probabilities by their mean."""
    n = scores.n_snippets
    k = max(1, -(-n // max_points))
    if k == 1:
        return scores.snippet_start_s, scores.snippet_end_s, dict(scores.curves), scores.fine
    first = np.arange(0, n, k)
    counts = np.diff(np.append(first, n))[:, None]
    last = np.minimum(first + k, n) - 1
    curves = {b: np.maximum.reduceat(c, first) for b, c in scores.curves.items()}
    fine = (np.add.reduceat(scores.fine.astype(np.float64), first, axis=0) / counts).astype(np.float32)
    return scores.snippet_start_s[first], scores.snippet_end_s[last], curves, fine


def _step(start_s: np.ndarray, end_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row values as a step curve: each value held from the row's start to its end."""
    x = np.append(start_s, end_s[-1:])
    y = np.append(values, values[-1:])
    return x, y


def timeline_figure(scores: VideoScores, selected: int | None = None, warning: str = "",
                    max_points: int = MAX_POINTS) -> go.Figure:
    """Every coarse curve (the detection branch solid, the others dotted), the threshold, segments
    shaded and labelled, and the per-class heat map under it on the same time axis.

    `selected` highlights one segment; `warning` (e.g. random weights) is printed in the title;
    `max_points` caps the columns drawn per trace (`pooled_rows`).
    """
    params = scores.params
    start_s, end_s, curves, fine = pooled_rows(scores, max_points)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.58, 0.42],
                        subplot_titles=("Anomaly score over time", "Class probabilities"))
    for n, branch in enumerate(scores.branches):
        x, y = _step(start_s, end_s, curves[branch])
        active = branch == params.branch
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", line_shape="hv", name=BRANCH_NAMES.get(branch, branch),
            line=dict(color=_BRANCH_COLOURS[n % len(_BRANCH_COLOURS)], width=2.5 if active else 1.5,
                      dash="solid" if active else "dot"),
            hovertemplate="%{y:.3f}", legendgroup=branch), row=1, col=1)
    fig.add_hline(y=params.threshold, line=dict(color="#555", dash="dash", width=1), row=1, col=1,
                  annotation_text=f"threshold {params.threshold:.2f}",
                  annotation_position="top left", annotation_font_size=11)

    centres = (start_s + end_s) / 2
    fig.add_trace(go.Heatmap(
        x=centres, y=list(scores.class_names), z=fine.T, zmin=0.0, zmax=1.0,
        colorscale="YlOrRd", colorbar=dict(title="P", len=0.42, y=0.21, thickness=12),
        hovertemplate="%{x:.1f} s · %{y}: %{z:.3f}<extra></extra>", name="class probability",
        showlegend=False), row=2, col=1)

    for n, seg in enumerate(scores.segments):
        colour = class_colour(scores.class_names, seg.label)
        chosen = n == selected
        for row in (1, 2):
            fig.add_vrect(x0=seg.start_s, x1=seg.end_s, row=row, col=1, fillcolor=colour,
                          opacity=0.35 if chosen else 0.18, layer="below",
                          line=dict(color=colour, width=2 if chosen else 0))
        fig.add_annotation(x=(seg.start_s + seg.end_s) / 2, y=1.04, xref="x", yref="y",
                           text=f"<b>#{n + 1} {seg.label}</b> {seg.confidence:.2f}",
                           showarrow=False, font=dict(size=11, color=colour),
                           bgcolor="rgba(255,255,255,0.8)")

    title = f"{scores.video} · {scores.model}"
    if warning:
        title = f"<span style='color:#c00'><b>⚠ {warning}</b></span><br>{title}"
    fig.update_layout(
        title=dict(text=title, font=dict(size=13)), height=560, hovermode="x unified",
        margin=dict(l=60, r=20, t=90 if warning else 70, b=40), template="plotly_white",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )
    fig.update_yaxes(range=[0, 1.1], title_text="score", row=1, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1, range=[0, max(scores.duration_s, 1e-3)])
    fig.update_xaxes(range=[0, max(scores.duration_s, 1e-3)], row=1, col=1)
    return fig


_MODEL_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")     # by position in a comparison


def comparison_figure(results: list[VideoScores], labels: list[str] | None = None, warning: str = "") -> go.Figure:
    """Several models' scores of one video: each model's detection curve in its own colour with
    its threshold (top), and its segments as a bar in its own lane (bottom), on one time axis."""
    labels = labels or [f"{n + 1}. {s.model}" for n, s in enumerate(results)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.7, 0.3],
                        subplot_titles=("Anomaly score over time", "Detected segments"))
    duration = max(max(s.duration_s for s in results), 1e-3)
    for n, (scores, label) in enumerate(zip(results, labels)):
        colour = _MODEL_COLOURS[n % len(_MODEL_COLOURS)]
        start_s, end_s, curves, _ = pooled_rows(scores)
        x, y = _step(start_s, end_s, curves[scores.params.branch])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line_shape="hv", legendgroup=f"m{n}",
                                 name=f"{label} ({scores.params.branch})", line=dict(color=colour, width=2),
                                 hovertemplate="%{y:.3f}"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[0, duration], y=[scores.params.threshold] * 2, mode="lines",
                                 line=dict(color=colour, dash="dash", width=1), legendgroup=f"m{n}",
                                 showlegend=False, hoverinfo="skip"), row=1, col=1)
        lane = f"{n + 1}"
        xs, ys, text = [], [], []
        for seg in scores.segments:
            xs += [seg.start_s, seg.end_s, None]
            ys += [lane, lane, None]
            text += [f"{seg.label} {seg.confidence:.2f}"] * 2 + [None]
        fig.add_trace(go.Scatter(x=xs or [None], y=ys or [lane], mode="lines", line=dict(color=colour, width=14),
                                 legendgroup=f"m{n}", showlegend=False, text=text or None,
                                 hovertemplate="%{text}<extra></extra>", name=f"{label} segments"), row=2, col=1)
    title = "Model comparison"
    if warning:
        title = f"<span style='color:#c00'><b>⚠ {warning}</b></span><br>{title}"
    fig.update_layout(title=dict(text=title, font=dict(size=13)), height=520, template="plotly_white",
                      hovermode="x unified", margin=dict(l=60, r=20, t=90 if warning else 60, b=90),
                      legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0.0))
    fig.update_yaxes(range=[0, 1.05], title_text="score", row=1, col=1)
    fig.update_yaxes(type="category", categoryorder="array",
                     categoryarray=[f"{n + 1}" for n in range(len(results))], title_text="model", row=2, col=1)
    fig.update_xaxes(range=[0, duration], row=1, col=1)
    fig.update_xaxes(range=[0, duration], title_text="time (s)", row=2, col=1)
    return fig


TRAINING_METRICS = ("auc_c", "ap_c", "auc_a", "ap_a",   # frame-level metrics, all in [0, 1]: VadCLIP,
                    "auc_roc", "auc_pr", "mean_mc_auroc", "mean_mc_aupr")   # AnomalyCLIP


def training_figure(history: list[dict]) -> go.Figure:
    """Loss curve (left) and frame-level test metrics (right) from training progress events."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Test metrics"))
    steps = [e for e in history if e.get("kind", "step") == "step" and e.get("loss") is not None]
    if steps:
        x = [e["step"] for e in steps]
        fig.add_trace(go.Scatter(x=x, y=[e["loss"] for e in steps], name="loss", mode="lines"),
                      row=1, col=1)
    evals = [e for e in history if e.get("kind", "eval") == "eval" and e.get("metrics")]
    names = [k for k in TRAINING_METRICS if any(isinstance(e["metrics"].get(k), (int, float)) for e in evals)]
    for name in names:
        pts = [(e["step"], e["metrics"][name]) for e in evals if name in e["metrics"]]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=name,
                                 mode="lines+markers"), row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(height=340, template="plotly_white", margin=dict(l=50, r=20, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=0))
    return fig
