"""Entry point of the VadCLIP review app (Hugging Face Space `app_file`, or `python app.py`).

Settings come from `VADCLIP_*` environment variables (see app/config.py) and the flags below;
the server address and port follow Gradio's own variables (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT)
unless --host / --port are given.
"""
from __future__ import annotations

import argparse
import sys

from app.config import AppConfig, add_arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py", description="VadCLIP video anomaly review app (Gradio).",
        epilog="Every flag has a VADCLIP_* environment variable; a flag wins over its variable.")
    add_arguments(parser)
    parser.add_argument("--host", default=None, help="address to listen on (GRADIO_SERVER_NAME; "
                        "default 127.0.0.1, 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=None, help="port (GRADIO_SERVER_PORT; default 7860)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = AppConfig.from_env().with_args(args)
    except ValueError as e:
        print(f"app.py: error: {e}", file=sys.stderr)
        return 2
    from app.ui import build_demo, launch_options

    demo = build_demo(config)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share or None,
                **launch_options(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
