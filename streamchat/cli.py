"""Headless commands: `python -m streamchat compare --prompt "..." --repeat 5 [--json]`, and
`python -m streamchat replay <message-or-run-id> [--speed 2]` (a recorded reply at its pace).

The API key comes from OPENAI_API_KEY or `.env` only: never a flag (it would land in shell
history and `ps`), never printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from typing import Any, TextIO

from . import compare, errors
from .config import LOCAL, Settings, load_settings, provider_for
from .generation import Endpoint, GenerationParams
from .inputs import clean_user_message
from .kinds import GenerationState, RunSource
from .metrics import format_seconds
from .providers import (
    ProviderError,
    RemoteConfig,
    list_models,
    local_endpoint,
    model_choices,
    validate_base_url,
)
from .records import safe_base_url

PROG = "python -m streamchat"
DEFAULT_REPEAT = 3
DEFAULT_MAX_TOKENS = 256
SEED = 1234
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class CliError(Exception):
    """A problem to report as one line, exit code 1."""


# argparse types: a bad value is a usage error (exit 2) with the message below.
def _repeat(text: str) -> int:
    try:
        return compare.validate(int(text), compare.SEQUENTIAL)[0]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from {compare.MIN_REPEAT} to {compare.MAX_REPEAT}, not {text!r}"
        ) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _speed(text: str) -> float:
    from .replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number above 0 or 'instant', not {text!r}") from None


def _prompt(text: str) -> str:
    cleaned, problem = clean_user_message(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return cleaned


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="StreamChat from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "compare",
        help="the same prompt, streaming vs non-streaming",
        description="Run one prompt with stream=True and stream=False and compare time to first "
        "text, total time and bytes. Without a base URL (flag, OPENAI_BASE_URL or "
        ".env) the embedded local model is used. The API key is read from "
        "OPENAI_API_KEY or .env.",
    )
    p.add_argument("--prompt", required=True, type=_prompt, help="the user message to send")
    p.add_argument(
        "--repeat",
        type=_repeat,
        default=DEFAULT_REPEAT,
        help=f"runs per side, {compare.MIN_REPEAT}-{compare.MAX_REPEAT} (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--mode",
        choices=compare.MODES,
        default=compare.SEQUENTIAL,
        help="sequential: one after the other, alternating which goes first (fair, "
        "default); race: both at once",
    )
    p.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        "--model",
        help="model name at the base URL (default: OPENAI_MODEL, else the first "
        "the endpoint lists); the embedded model has just one",
    )
    p.add_argument(
        "--max-tokens",
        type=_positive,
        default=DEFAULT_MAX_TOKENS,
        help=f"reply length limit (default {DEFAULT_MAX_TOKENS})",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the uncounted warm-up request (then the first run also measures "
        "connection setup and a cold prompt cache)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-save", action="store_true", help="do not record the runs in the store")
    r = commands.add_parser(
        "replay",
        help="replay a recorded reply at its recorded pace",
        description="Print a recorded reply (a chat message id, or a run id from the Runs page) "
        "as it streamed, at its recorded pace, then its figures. Needs no model server.",
    )
    r.add_argument("id", help="a message id (hex) or a run id (a number)")
    r.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="1 (default), 2, 5 … times the recorded pace, or 'instant'",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_logging()
    settings = load_settings()
    try:
        if args.command == "replay":
            return run_replay(args, settings)
        return run_compare(args, settings)
    except KeyboardInterrupt:
        _say("stopped.")
        return EXIT_INTERRUPTED
    except (CliError, errors.UserFacingError) as exc:
        _say(_one_line(str(exc), settings))
        return EXIT_FAILED
    except Exception as exc:  # never a traceback
        _say(_one_line(f"unexpected error: {type(exc).__name__}: {exc}", settings))
        return EXIT_FAILED


def run_compare(args: argparse.Namespace, settings: Settings) -> int:
    endpoint = resolve_endpoint(args, settings)
    store = None
    if not args.no_save:
        from .store import Store

        try:
            store = Store(settings.data_dir)
        except Exception as exc:
            raise CliError(
                f"Cannot open the store in {settings.data_dir}: {exc}. "
                "Set STREAMCHAT_DATA_DIR or pass --no-save."
            ) from None
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0, seed=SEED)
    comparison = compare.Comparison(
        [{"role": "user", "content": args.prompt}],
        endpoint,
        params=params,
        repeat=args.repeat,
        mode=args.mode,
        warmup=not args.no_warmup,
        on_generation_done=compare.record_to_store(store, source=RunSource.CLI) if store else None,
    )
    bar = ProgressBar(sys.stderr)
    try:
        comparison.start()
        while not comparison.wait(0.1):
            bar.draw(comparison)
    except KeyboardInterrupt:
        comparison.stop()  # the runner closes the connections in flight
        comparison.wait(5)
        bar.clear()
        done = sum(1 for r in compare.run_rows(comparison.pairs) if r["state"] == GenerationState.DONE)
        _say(f"stopped: {done} of {comparison.repeat * 2} runs had finished.")
        return EXIT_INTERRUPTED
    finally:
        bar.clear()
        if store is not None:
            store.close()
    return report(comparison, endpoint, args, settings)


def run_replay(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Print the reply as it streamed (thinking first, marked), at `args.speed` times its pace,
    then its figures. Ctrl-C stops it."""
    from . import replay
    from .metrics import final_metrics, summary_line
    from .store import Store

    out = out or sys.stdout
    try:
        store = Store(settings.data_dir)
    except Exception as exc:
        raise CliError(
            f"Cannot open the store in {settings.data_dir}: {exc}. Set STREAMCHAT_DATA_DIR."
        ) from None
    try:
        rec = replay.load_any(store, args.id)
    finally:
        store.close()
    if rec is None:
        raise CliError(
            f"{args.id}: {replay.NO_RECORDING} (no such reply or run, or it is older than recordings)."
        )
    r = replay.Replay(rec, args.speed)
    out.write(f"▶ {r.label} · {replay.speed_label(r.speed)}\n")
    if rec.prompt:
        out.write(f"> {' '.join(rec.prompt.split())[:200]}\n\n")
    out.write(rec.prefix)
    out.flush()
    shown_reasoning = shown_text = 0
    r.start()
    try:
        while True:
            finished = r.wait(0.01)
            reasoning, text = r.reasoning, r.text
            if len(reasoning) > shown_reasoning:
                if shown_reasoning == 0:
                    out.write("[thinking] ")
                out.write(reasoning[shown_reasoning:])
                shown_reasoning = len(reasoning)
            if len(text) > shown_text:
                if shown_text == 0 and shown_reasoning:
                    out.write("\n[answer] ")
                out.write(text[shown_text:])
                shown_text = len(text)
            out.flush()
            if finished:
                break
    except KeyboardInterrupt:
        r.stop()
        r.wait(2)
        out.write("\n")
        _say("replay stopped.")
        return EXIT_INTERRUPTED
    m = final_metrics(r)
    out.write("\n\n")
    out.write(f"{summary_line(m)}\n")
    details = [
        f"TTFT {_seconds(m.ttft.value)}",
        f"TTFB {_seconds(m.ttfb.value)}",
        f"ITL p50 {_seconds(m.itl_p50.value)} · p95 {_seconds(m.itl_p95.value)}",
        f"{m.bytes.value or 0:,} bytes · {m.chunks} chunks",
        f"state {r.state}" + (f": {r.error.message}" if r.error else ""),
    ]
    out.write(" · ".join(details) + "\n")
    out.flush()
    return EXIT_OK


def _seconds(value: float | int | None) -> str:
    return "–" if value is None else format_seconds(float(value))


def resolve_endpoint(args: argparse.Namespace, settings: Settings) -> Endpoint:
    base_url = args.base_url or settings.base_url
    if provider_for(base_url, settings.api_key) == LOCAL:
        _status("Starting the embedded model…")
        try:
            return local_endpoint(settings.local_model_path)
        finally:
            _status("")
    base_url = validate_base_url(base_url or settings.remote_base_url)
    wanted = args.model or settings.model
    _, model = model_choices(wanted, [] if wanted else list_models(base_url, settings.api_key))
    if not model:
        raise ProviderError(f"{base_url} lists no models: pass --model.")
    return RemoteConfig(base_url, settings.api_key, model).endpoint()


def report(
    comparison: compare.Comparison, endpoint: Endpoint, args: argparse.Namespace, settings: Settings
) -> int:
    summary = comparison.summary()
    outcomes = comparison.outcomes()
    verdict = compare.verdict(summary, outcomes)
    runs = compare.run_rows(comparison.pairs)
    nothing_done = all(out["done"] == 0 for out in outcomes.values())
    if nothing_done:
        messages = list(dict.fromkeys(m for out in outcomes.values() for m in out["errors"]))
        _say(_one_line(comparison.error or (messages[0] if messages else verdict), settings))
        return EXIT_FAILED
    if args.json:
        print(
            json.dumps(
                {
                    "command": "compare",
                    "endpoint": {
                        "provider": endpoint.provider,
                        "base_url": safe_base_url(endpoint.base_url),
                        "model": endpoint.model,
                    },
                    "mode": comparison.mode,
                    "repeat": comparison.repeat,
                    "params": dataclasses.asdict(comparison.params),
                    "summary": summary,
                    "outcomes": outcomes,
                    "verdict": verdict,
                    "runs": runs,
                    "error": comparison.error,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(
            f"{endpoint.model} at {safe_base_url(endpoint.base_url)} · {comparison.mode} · "
            f"{comparison.repeat} repeat(s)"
        )
        print(format_table(summary))
        print(verdict)
    for side, out in outcomes.items():
        for message in out["errors"]:
            _say(f"{side} run failed: {_one_line(message, settings)}")
    if comparison.error:
        _say(_one_line(comparison.error, settings))
    complete = all(out["done"] > 0 for out in outcomes.values()) and not comparison.error
    return EXIT_OK if complete else EXIT_FAILED


# ---- text output --------------------------------------------------------------------------
def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return format_seconds(value)
    if unit == "tok/s":
        return f"{value:.1f}"
    if unit in ("bytes", "chunks") or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def format_table(summary: list[dict[str, Any]]) -> str:
    header = ["", "stream median", "p95", "non-stream median", "p95"]
    body = [
        [
            row["label"],
            *(
                format_value(row[f"{side}_{stat}"], row["unit"])
                for side in ("stream", "non_stream")
                for stat in ("median", "p95")
            ),
        ]
        for row in summary
    ]
    n = summary[0] if summary else {}
    body.append(["Runs done", str(n.get("stream_n", 0)), "", str(n.get("non_stream_n", 0)), ""])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


class ProgressBar:
    """A one-line text bar redrawn with \\r; only on a terminal, so logs and pipes stay clean."""

    WIDTH = 24

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.t0 = time.perf_counter()
        self.drawn = False

    def draw(self, comparison: compare.Comparison) -> None:
        if not self.enabled:
            return
        done, total = comparison.progress
        filled = self.WIDTH * done // total
        live = ""
        pair = comparison.current
        if pair is None and comparison.warmup_generation is not None:
            live = "warm-up"
        elif pair is not None:
            live = "  ".join(
                f"{side}: {g.status_label}"
                for side in compare.SIDES
                if (g := pair.get(side)) is not None and not g.is_finished
            )
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} runs "
            f"{time.perf_counter() - self.t0:5.1f} s  {live}"
        )
        self.stream.write("\r" + line + "\033[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False


def _status(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + text + "\033[K")
        sys.stderr.flush()


def _say(message: str) -> None:
    print(f"streamchat: {message}", file=sys.stderr)


def _one_line(message: str, settings: Settings) -> str:
    return " ".join(errors.redact(message, (settings.api_key or "",)).split())


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:  # no traceback, ever
        return f"streamchat: {record.getMessage().splitlines()[0] if record.getMessage() else ''}"


def _quiet_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR)
