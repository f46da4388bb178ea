"""The VadCLIP review app (Gradio): analyse videos, review flagged segments, train models.

`app.config.AppConfig` holds every setting (built from environment variables or CLI flags),
`app.ui.build_demo(config)` builds the Blocks UI, and `app.handlers` holds the plain-Python
functions the UI wires (testable without a browser).
"""
