"""`vadclip train`: train VadCLIP on cached CLIP features with the official recipe."""
from __future__ import annotations

import argparse
import signal
from dataclasses import fields

from tqdm import tqdm

from ..config import PRESETS
from ..train import TrainConfig, train
from ..utils import keep_freed_memory


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.replace(" ", "").split(",") if m)
    except ValueError:
        raise argparse.ArgumentTypeError(f"milestones must be comma-separated epochs like 4,8, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train on cached CLIP features with the official recipe",
        description="Train VadCLIP on snippet features (official recipe; options left out take the "
                    "preset's values). Writes best/last.safetensors, train_state.pt, run.json, "
                    "metrics.jsonl and report.json to --out.")
    p.add_argument("--preset", default="xd", choices=sorted(PRESETS))
    p.add_argument("--train-list", required=True, help="CSV path,label, or a folder <root>/<Class>/<video>.npy")
    p.add_argument("--test-list", help="CSV path,label of the test videos (evaluation and model selection)")
    p.add_argument("--annotations", action="append", help="official annotation file of the test list (repeatable)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--clip", default="openai", help="CLIP source for the text tower (openai, random, a file)")
    p.add_argument("--init", help="start from this checkpoint (official .pth, ours, or hf://OWNER/REPO/FILE)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--milestones", type=_milestones, help='epochs where the lr drops x0.1, e.g. "4,8" ("" for none)')
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int, dest="eval_every_steps", help="also evaluate every N steps (0: per epoch)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2, dest="num_workers", help="data loader processes")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from train_state.pt")
    p.add_argument("--max-steps", type=int, help="stop (resumably) after this many steps")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear lr warm-up steps (default 0, as official)")
    p.add_argument("--ema", type=float, default=0.0, dest="ema_decay", help="EMA decay of the weights (default 0: off)")
    p.add_argument("--data-root", help="refuse feature paths that resolve outside this folder")
    p.add_argument("--no-amp", action="store_false", dest="amp", help="no bfloat16 autocast on CUDA")
    p.add_argument("--return-memory", action="store_true",
                   help="let the C allocator hand freed memory back to the system (by default this process "
                        "keeps it for reuse: CPU steps run ~10%% faster, but memory stays at its peak)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    config = TrainConfig(**values, out_dir=args.out)
    if not args.return_memory:
        keep_freed_memory()
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        print("\nstopping after this step (Ctrl-C again to abort)...", flush=True)

    def on_progress(event: dict) -> None:
        if event["kind"] == "log":
            tqdm.write(event["message"])

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train(config, on_progress=on_progress, should_stop=lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
    state = "cancelled" if result.cancelled else "done"
    best = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"{state}: {result.steps} steps, {result.epochs_done} epochs, best {result.select_metric} = {best}, "
          f"{result.elapsed_s:.1f} s")
    print(f"best checkpoint: {result.best_path}")
    return 0
