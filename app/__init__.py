"""The VadCLIP review app (Gradio): analyse videos, review flagged segments, train models.

`app.config.AppConfig` holds every setting (built from environment variables or CLI flags);
`app.ui.build_demo(config)` puts the tabs together, one builder per tab (`app/tab_*.py`) over
the plain-Python handlers of `app.handlers` (one module per tab, testable without a browser).
"""
