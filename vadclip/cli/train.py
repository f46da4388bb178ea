"""`vadclip train`: train VadCLIP (default) or AnomalyCLIP on cached CLIP features with the official recipe."""
from __future__ import annotations

import argparse
import signal
from dataclasses import fields

from tqdm import tqdm

from ..config import PRESETS
from ..errors import OptionError
from ..methods import METHODS, train, train_seeds
from ..seeds import format_seeds_table, parse_seeds
from ..train import TrainConfig
from ..utils import keep_freed_memory

# Options that belong to one method only: (dest, flag). Given with the other method they are refused.
VADCLIP_ONLY = (("train_list", "--train-list"), ("init", "--init"), ("milestones", "--milestones"),
                ("num_workers", "--workers"), ("max_steps", "--max-steps"), ("warmup_steps", "--warmup-steps"),
                ("ema_decay", "--ema"), ("data_root", "--data-root"), ("amp", "--no-amp"),
                ("padding_aware_attention", "--padding-aware-attention"))
ANOMALYCLIP_ONLY = (("train_normal", "--train-normal"), ("train_abnormal", "--train-abnormal"),
                    ("warmup_epochs", "--warmup-epochs"), ("reversible", "--reversible"))


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.replace(" ", "").split(",") if m)
    except ValueError:
        raise argparse.ArgumentTypeError(f"milestones must be comma-separated epochs like 4,8, got {text!r}") from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return parse_seeds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _presets() -> list[str]:
    from ..anomalyclip import PRESETS as AC_PRESETS
    return sorted(set(PRESETS) | set(AC_PRESETS))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train VadCLIP or AnomalyCLIP on cached CLIP features with the official recipe",
        description="Train on cached CLIP features with the official recipe of --method (options left out "
                    "take the preset's values). Writes best/last.safetensors, train_state.pt, run.json, "
                    "metrics.jsonl and report.json to --out (with --seeds: one run per seed in "
                    "OUT/seed_<s> and OUT/seeds_summary.json).")
    p.add_argument("--method", choices=METHODS, default="vadclip", help="vadclip (default) or anomalyclip")
    p.add_argument("--preset", default="xd", choices=_presets(), help="vadclip: xd, ucf; anomalyclip: xd, ucf, sht")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--test-list", help="test list (vadclip: CSV path,label; anomalyclip: Anomaly_Test.txt); "
                                       "evaluation and model selection")
    p.add_argument("--annotations", action="append",
                   help="official annotation file of the test list (vadclip: repeatable; anomalyclip: "
                        "Temporal_Anomaly_Annotation_for_Testing_Videos.txt)")
    p.add_argument("--features-root", help="folder of the features: listed files that do not exist are found "
                                           "by name under it (required for anomalyclip: <DIR>/<PATH>.npy)")
    p.add_argument("--clip", default="openai", help="CLIP source for the text tower (openai, random, a file)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, help="anomalyclip: all clips of a step (half abnormal, half normal)")
    p.add_argument("--seed", type=int)
    p.add_argument("--seeds", type=_seeds, help="train once per seed in sequence (e.g. 0,1,2 or 0-4) into "
                                                "OUT/seed_<s>, then summarise (mean, std, every run)")
    p.add_argument("--eval-every", type=int, help="vadclip: also evaluate every N steps (0: per epoch); "
                                                  "anomalyclip: evaluate every N epochs")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from train_state.pt")

    v = p.add_argument_group("VadCLIP only")
    v.add_argument("--train-list", help="CSV path,label, or a folder <root>/<Class>/<video>.npy")
    v.add_argument("--init", help="start from this checkpoint (official .pth, ours, or hf://OWNER/REPO/FILE)")
    v.add_argument("--milestones", type=_milestones, help='epochs where the lr drops x0.1, e.g. "4,8" ("" for none)')
    v.add_argument("--workers", type=int, dest="num_workers", help="data loader processes (default 2)")
    v.add_argument("--max-steps", type=int, help="stop (resumably) after this many steps")
    v.add_argument("--warmup-steps", type=int, help="linear lr warm-up steps (default 0, as official)")
    v.add_argument("--ema", type=float, dest="ema_decay", help="EMA decay of the weights (default 0: off)")
    v.add_argument("--data-root", help="refuse feature paths that resolve outside this folder")
    v.add_argument("--no-amp", action="store_const", const=False, dest="amp", help="no bfloat16 autocast on CUDA")
    v.add_argument("--padding-aware-attention", action="store_const", const=True,
                   help="improvement, off by default: the local transformer does not attend to padding "
                        "(the official code does; ModelConfig.padding_aware_attention, issue 16)")
    v.add_argument("--from-reviews", metavar="DB_URL",
                   help="train on the review app's decisions instead of --train-list: reviewed videos whose "
                        "features are cached (--feature-cache), fine-tuning --init; part of the reviewed "
                        "videos is held out and evaluated before and after (vadclip.reviews_dataset)")
    v.add_argument("--feature-cache", help="with --from-reviews: the app's feature cache (DATA_DIR/feature_cache)")
    v.add_argument("--holdout", type=float, default=0.3, help="with --from-reviews: share of reviewed videos held out")
    v.add_argument("--return-memory", action="store_true",
                   help="let the C allocator hand freed memory back to the system (by default this process "
                        "keeps it for reuse: CPU steps run ~10%% faster, but memory stays at its peak)")

    a = p.add_argument_group("AnomalyCLIP only")
    a.add_argument("--train-normal", help="Anomaly_Train_Normal.txt (PATH START END LABEL)")
    a.add_argument("--train-abnormal", help="Anomaly_Train_Abnormal.txt")
    a.add_argument("--warmup-epochs", type=int, help="linear lr warm-up epochs (epoch 0 at lr 0, as official)")
    a.add_argument("--reversible", action="store_const", const=True,
                   help="train through the official reversible axial transformer (recomputes activations in "
                        "the backward: less memory, slower; same gradients up to float rounding)")
    p.set_defaults(run=run)


def _refuse_other_method(args: argparse.Namespace) -> None:
    others = ANOMALYCLIP_ONLY if args.method == "vadclip" else VADCLIP_ONLY
    given = [flag for dest, flag in others if getattr(args, dest, None) is not None]
    if args.method == "anomalyclip" and args.return_memory:
        given.append("--return-memory")
    if given:
        raise OptionError(f"{', '.join(given)}: not an option of --method {args.method}")


def vadclip_config(args: argparse.Namespace) -> TrainConfig:
    """VadCLIP's TrainConfig from the parsed options (absent ones keep the dataclass defaults)."""
    if args.preset not in PRESETS:
        raise OptionError(f"--preset {args.preset}: VadCLIP has the presets {', '.join(PRESETS)}")
    if not args.train_list:          # (other training sources, e.g. reviewed videos, go beside --train-list)
        raise OptionError("--train-list is required for --method vadclip")
    values = {"eval_every_steps": args.eval_every, **vars(args)}
    names = {f.name for f in fields(TrainConfig)} - {"out_dir"}
    given = {k: v for k, v in values.items() if k in names and v is not None}
    return TrainConfig(**given, out_dir=args.out)


def anomalyclip_config(args: argparse.Namespace):
    """AnomalyCLIP's TrainConfig from the parsed options."""
    from ..anomalyclip import PRESETS as AC_PRESETS
    from ..anomalyclip import TrainConfig as ACTrainConfig

    missing = [flag for flag, value in (("--train-normal", args.train_normal), ("--train-abnormal", args.train_abnormal),
                                        ("--features-root", args.features_root)) if not value]
    if missing:
        raise OptionError(f"{', '.join(missing)} required for --method anomalyclip")
    if args.preset not in AC_PRESETS:
        raise OptionError(f"--preset {args.preset}: AnomalyCLIP has the presets {', '.join(AC_PRESETS)}")
    if args.annotations and len(args.annotations) > 1:
        raise OptionError("--method anomalyclip takes one --annotations file (the temporal test annotation)")
    optional = {"reversible": True} if args.reversible else {}      # else the trainer's default
    return ACTrainConfig(
        **optional, preset=args.preset, train_normal=args.train_normal, train_abnormal=args.train_abnormal,
        test_list=args.test_list, annotations=args.annotations[0] if args.annotations else None,
        features_root=args.features_root, clip=args.clip, out_dir=args.out, epochs=args.epochs, lr=args.lr,
        warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, seed=args.seed,
        eval_every=1 if args.eval_every is None else args.eval_every, device=args.device, resume=args.resume)


class Progress:
    """Prints a run's progress: log lines always; for AnomalyCLIP (whose trainer has no bar of its own)
    a step bar and the metrics of every evaluation."""

    def __init__(self, own_bar: bool):
        self.own_bar = own_bar
        self.bar: tqdm | None = None

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "log":
            tqdm.write(event["message"])
        elif kind == "step" and self.own_bar:
            if self.bar is None:
                self.bar = tqdm(total=event.get("total_steps"), initial=event["step"] - 1, desc="train",
                                unit="step", dynamic_ncols=True)
            self.bar.set_postfix(loss=f"{event['loss']:.4f}", epoch=event["epoch"] + 1, refresh=False)
            self.bar.update(1)
        elif kind == "eval" and self.own_bar:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in (event.get("metrics") or {}).items()
                              if isinstance(v, float))
            tqdm.write(f"eval after epoch {event['epoch']}: {shown}" + ("  (best)" if event.get("best") else ""))
        elif kind == "done":
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_from_reviews(args: argparse.Namespace) -> int:
    """`--from-reviews`: fine-tune --init on the reviewed videos and print the before/after table."""
    from ..reviews_dataset import fine_tune_from_reviews

    if args.method != "vadclip" or not args.init or not args.feature_cache or args.train_list:
        raise OptionError("--from-reviews needs --init CHECKPOINT and --feature-cache DIR, with --method "
                          "vadclip and no --train-list")
    options = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
                                 ("seed", args.seed), ("max_steps", args.max_steps)) if v is not None}
    result = fine_tune_from_reviews(args.from_reviews, args.init, args.out, cache_dir=args.feature_cache,
                                    preset=args.preset, holdout=args.holdout, device=args.device,
                                    on_progress=Progress(own_bar=False), **options)
    print(result.report())
    return 0


def run(args: argparse.Namespace) -> int:
    _refuse_other_method(args)
    if getattr(args, "from_reviews", None):
        return run_from_reviews(args)
    if args.seeds is not None and args.seed is not None:
        raise OptionError("give --seed or --seeds, not both")
    config = vadclip_config(args) if args.method == "vadclip" else anomalyclip_config(args)
    if args.method == "vadclip" and not args.return_memory:
        keep_freed_memory()
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        print("\nstopping after this step (Ctrl-C again to abort)...", flush=True)

    progress = Progress(own_bar=args.method == "anomalyclip")
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if args.seeds is not None:
            summary = train_seeds(config, args.seeds, on_progress=progress, should_stop=lambda: bool(interrupted))
        else:
            result = train(config, on_progress=progress, should_stop=lambda: bool(interrupted))
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    if args.seeds is not None:
        state = "cancelled" if summary.get("cancelled") else "done"
        print(f"{state}: {summary['n_runs']} of {len(args.seeds)} seed run(s) in {args.out}")
        if summary["n_runs"]:
            print(format_seeds_table(summary))
            print(f"summary: {args.out}/seeds_summary.json")
        return 0
    state = "cancelled" if result.cancelled else "done"
    best = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"{state}: {result.steps} steps, {result.epochs_done} epochs, best {result.select_metric} = {best}, "
          f"{result.elapsed_s:.1f} s")
    last = getattr(result, "last_metrics", None)
    if last:
        print("last epoch: " + "  ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float)))
    print(f"best checkpoint: {result.best_path}")
    return 0
