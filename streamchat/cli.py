"""Headless commands: `python -m streamchat compare --prompt "..." --repeat 5 [--json]` (streaming
vs non-streaming, or 2–4 `--lane`s of any endpoints), and `python -m streamchat replay
<message-or-run-id> [--speed 2]` (a recorded reply at its pace).

API keys come from OPENAI_API_KEY, STREAMCHAT_KEY_<NAME> or `.env` only: never a flag (it would
land in shell history and `ps`), never printed; each lane's key goes only to its own endpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from . import compare, errors, lanes
from .config import LOCAL, Settings, load_settings, provider_for
from .generation import Endpoint, GenerationParams
from .inputs import clean_user_message
from .kinds import GenerationState, RunSource
from .lanes import Lane, LaneSpecError
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

if TYPE_CHECKING:
    from .store import Store

PROG = "python -m streamchat"
DEFAULT_REPEAT = 3
DEFAULT_MAX_TOKENS = 256
SEED = 1234
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """A problem to report as one line, exit code 1."""


class UsageError(Exception):
    """Arguments that cannot work together (a bad --lane, …): one line, exit code 2, like argparse."""


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
        "text, total time and bytes; or race 2-4 lanes (--lane) of any endpoints, models "
        "and stream settings. Without a base URL (flag, OPENAI_BASE_URL or "
        ".env) the embedded local model is used. The API key is read from "
        "OPENAI_API_KEY or .env; a named endpoint's from STREAMCHAT_KEY_<NAME>.",
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
        "default); race: all at once",
    )
    p.add_argument(
        "--lane",
        action="append",
        metavar="SPEC",
        help=f"a lane, {lanes.MIN_LANES}-{lanes.MAX_LANES} of them instead of streaming vs "
        "non-streaming: 'name=a,base_url=http://…/v1,model=m,stream=on[,temperature=0.7]"
        "[,max_tokens=200]', a STREAMCHAT_ENDPOINTS name ('a', 'name=a2,endpoint=a,stream=off'), "
        "or 'local' (the embedded model). Not with --base-url or --model",
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
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {_one_line(str(exc), _secrets(settings))}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, errors.UserFacingError) as exc:
        _say(_one_line(str(exc), _secrets(settings)))
        return EXIT_FAILED
    except Exception as exc:  # never a traceback
        _say(_one_line(f"unexpected error: {type(exc).__name__}: {exc}", _secrets(settings)))
        return EXIT_FAILED


def _open_store(settings: Settings, alternative: str = "") -> Store:
    """The store (SQLite in STREAMCHAT_DATA_DIR, or STREAMCHAT_DATABASE_URL's PostgreSQL), or a
    CliError that says what to set (never the database URL: it may hold a password)."""
    from .store import open_store

    try:
        return open_store(settings)
    except Exception as exc:
        where = "the database" if settings.database_url else f"the store in {settings.data_dir}"
        setting = "STREAMCHAT_DATABASE_URL" if settings.database_url else "STREAMCHAT_DATA_DIR"
        raise CliError(f"Cannot open {where}: {exc}. Check {setting} {alternative}".rstrip() + ".") from None


def run_compare(args: argparse.Namespace, settings: Settings) -> int:
    # Every lane is checked (and the embedded model started, if a lane uses it) before any
    # request is sent.
    chosen = resolve_lanes(args, settings) if args.lane else None
    endpoint = None if chosen else resolve_endpoint(args, settings)
    store = None
    if not args.no_save:
        store = _open_store(settings, "or pass --no-save")
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0, seed=SEED)
    comparison = compare.Comparison(
        [{"role": "user", "content": args.prompt}],
        endpoint,
        lanes=chosen,
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
        done = sum(1 for r in compare.run_rows(comparison.rounds) if r["state"] == GenerationState.DONE)
        _say(f"stopped: {done} of {comparison.progress[1]} runs had finished.")
        return EXIT_INTERRUPTED
    finally:
        bar.clear()
        if store is not None:
            store.close()
    if endpoint is None:
        return report_lanes(comparison, args, _secrets(settings, comparison.lanes))
    return report(comparison, endpoint, args, settings)


def run_replay(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Print the reply as it streamed (thinking first, marked), at `args.speed` times its pace,
    then its figures. Ctrl-C stops it."""
    from . import replay
    from .metrics import final_metrics, summary_line

    out = out or sys.stdout
    store = _open_store(settings)
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


def start_local(settings: Settings) -> Endpoint:
    _status("Starting the embedded model…")
    try:
        return local_endpoint(settings.local_model_path)
    finally:
        _status("")


def resolve_endpoint(args: argparse.Namespace, settings: Settings) -> Endpoint:
    base_url = args.base_url or settings.base_url
    if provider_for(base_url, settings.api_key) == LOCAL:
        return start_local(settings)
    base_url = validate_base_url(base_url or settings.remote_base_url)
    wanted = args.model or settings.model
    _, model = model_choices(wanted, [] if wanted else list_models(base_url, settings.api_key))
    if not model:
        raise ProviderError(f"{base_url} lists no models: pass --model.")
    return RemoteConfig(base_url, settings.api_key, model).endpoint()


def resolve_lanes(args: argparse.Namespace, settings: Settings) -> list[Lane]:
    """The --lane specs as Lanes, every one checked (UsageError naming the lane otherwise); the
    embedded model is started only when a lane uses it, once all are known to be good."""
    if args.base_url or args.model:
        raise UsageError(
            "--lane does not go with --base-url or --model: give base_url= and model= in each --lane."
        )
    local = functools.cache(lambda: start_local(settings))
    try:
        specs = [
            lanes.parse_lane_spec(
                text,
                number,
                settings.endpoints,
                configured_base_url=settings.base_url,
                configured_key=settings.api_key,
                configured_model=settings.model,
            )
            for number, text in enumerate(args.lane, 1)
        ]
        chosen = lanes.check_lanes([lanes.lane_from_spec(spec, local) for spec in specs])
    except LaneSpecError as exc:
        raise UsageError(str(exc)) from None
    return [
        dataclasses.replace(lane, endpoint=(e := local()), model=e.model, base_url=e.base_url)
        if spec.local
        else lane
        for spec, lane in zip(specs, chosen, strict=True)
    ]


def report(
    comparison: compare.Comparison, endpoint: Endpoint, args: argparse.Namespace, settings: Settings
) -> int:
    summary = comparison.summary()
    outcomes = comparison.outcomes()
    verdict = compare.verdict(summary, outcomes)
    runs = compare.run_rows(comparison.rounds)
    secrets = _secrets(settings)
    messages = list(dict.fromkeys(m for out in outcomes.values() for m in out["errors"]))
    if _nothing_done(comparison, outcomes, messages[0] if messages else verdict, secrets):
        return EXIT_FAILED
    if args.json:
        _print_json(
            {
                "command": "compare",
                "endpoint": {
                    "provider": endpoint.provider,
                    "base_url": safe_base_url(endpoint.base_url),
                    "model": endpoint.model,
                },
                **_common_json(comparison, summary, outcomes, verdict, runs),
            },
            secrets,
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
            _say(f"{side} run failed: {_one_line(message, secrets)}")
    if comparison.error:
        _say(_one_line(comparison.error, secrets))
    complete = all(out["done"] > 0 for out in outcomes.values()) and not comparison.error
    return EXIT_OK if complete else EXIT_FAILED


def report_lanes(comparison: compare.Comparison, args: argparse.Namespace, secrets: Sequence[str]) -> int:
    """Lanes: every lane reported, a failed one too (exit 1 then); nothing at all done: one line."""
    summary = comparison.summary()
    outcomes = comparison.outcomes()
    # The lanes' words always (lanes named "stream" and "non-stream" would get the pair's).
    verdict = compare.lanes_verdict(summary, outcomes, comparison.lanes)
    if _nothing_done(comparison, outcomes, verdict, secrets):  # (the verdict names each lane and why)
        return EXIT_FAILED
    rows = lane_rows(comparison, summary, outcomes)
    spread = comparison.send_spread_s() if comparison.mode == compare.RACE else None
    if args.json:
        runs = compare.run_rows(comparison.rounds)
        _print_json(
            {
                "command": "compare",
                "endpoint": None,
                "lanes": rows,
                "send_spread_s": spread,
                **_common_json(comparison, summary, outcomes, verdict, runs),
            },
            secrets,
        )
    else:
        sent = f" · requests sent within {format_seconds(spread)}" if spread is not None else ""
        print(f"{len(rows)} lanes · {comparison.mode} · {comparison.repeat} repeat(s){sent}")
        print(format_lanes_table(rows, comparison.repeat))
        print(_one_line(verdict, secrets))
    for lane in comparison.lanes:
        out = outcomes[lane.key]
        failure = compare.lane_failure(lane, out)
        if failure and out[GenerationState.DONE] and out["errors"]:
            failure += ": " + "; ".join(out["errors"])
        if failure:
            _say(_one_line(failure, secrets))
    if comparison.error:
        _say(_one_line(comparison.error, secrets))
    failed = any(row["failed"] for row in rows)
    return EXIT_FAILED if failed or comparison.error else EXIT_OK


def lane_rows(
    comparison: compare.Comparison, summary: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per lane, in lane order: what it ran, how it ended, its medians and p95s."""
    rows = []
    for lane in comparison.lanes:
        out = outcomes[lane.key]
        prefix = compare.stat_prefix(lane.key)
        params = comparison.lane_params(lane)
        rows.append(
            {
                "name": lane.name,
                "key": lane.key,
                "base_url": safe_base_url(lane.base_url),
                "model": lane.model,
                "stream": lane.stream,
                "temperature": params.temperature,
                "max_tokens": params.max_tokens,
                "failed": out[GenerationState.DONE] < comparison.repeat,
                "error": out["errors"][0] if out["errors"] else None,
                "outcome": out,
                "median": {row["metric"]: row[f"{prefix}_median"] for row in summary},
                "p95": {row["metric"]: row[f"{prefix}_p95"] for row in summary},
                "n": out[GenerationState.DONE],
            }
        )
    return rows


def _nothing_done(
    comparison: compare.Comparison, outcomes: dict[str, dict[str, Any]], why: str, secrets: Sequence[str]
) -> bool:
    """No run finished at all: say why in one line (and print nothing else)."""
    if any(out["done"] for out in outcomes.values()):
        return False
    _say(_one_line(comparison.error or why, secrets))
    return True


def _common_json(
    comparison: compare.Comparison,
    summary: list[dict[str, Any]],
    outcomes: dict[str, dict[str, Any]],
    verdict: str,
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "mode": comparison.mode,
        "repeat": comparison.repeat,
        "params": dataclasses.asdict(comparison.params),
        "summary": summary,
        "outcomes": outcomes,
        "verdict": verdict,
        "runs": runs,
        "error": comparison.error,
    }


def _print_json(data: dict[str, Any], secrets: Sequence[str]) -> None:
    print(errors.redact(json.dumps(data, indent=2, ensure_ascii=False), tuple(secrets)))


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
    return _grid(header, body)


# (metric, column) of the lanes table; a metric missing from the summary (time to answer without
# thinking) is left out.
LANE_COLUMNS = (
    ("first_text_s", "First text"),
    ("first_answer_s", "Answer"),
    ("e2e_s", "Total"),
    ("tok_per_s", "Tok/s"),
    ("output_tokens", "Tokens"),
    ("bytes", "Bytes"),
)
UNITS = {key: unit for key, _, unit, _ in compare.ROWS + compare.REASONING_ROWS}


def format_lanes_table(rows: list[dict[str, Any]], repeat: int) -> str:
    """One row per lane: the medians (and p95s, "median / p95", over more than one repeat)."""
    shown = [(m, label) for m, label in LANE_COLUMNS if rows and m in rows[0]["median"]]
    header = ["Lane", "Model", "Delivery", *(label for _, label in shown), "Runs done"]

    def cell(row: dict[str, Any], metric: str) -> str:
        median = format_value(row["median"][metric], UNITS[metric])
        return median if repeat == 1 else f"{median} / {format_value(row['p95'][metric], UNITS[metric])}"

    body = [
        [
            row["name"],
            row["model"] or "–",
            "stream" if row["stream"] else "non-stream",
            *(cell(row, m) for m, _ in shown),
            f"{row['n']}/{repeat}",
        ]
        for row in rows
    ]
    table = _grid(header, body, left=3)
    return table if repeat == 1 else table + "\n(median / p95 over the runs done)"


def _grid(header: list[str], body: list[list[str]], left: int = 1) -> str:
    """A plain text table: the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        cells = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
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
        current = comparison.current
        if current is None and comparison.warmup_generation is not None:
            live = "warm-up"
        elif current is not None:  # the lanes in flight, by name (the default pair: by side)
            live = "  ".join(
                f"{lane.key if lane.key in compare.SIDES else lane.name}: {g.status_label}"
                for lane in comparison.lanes
                if (g := current.get(lane.key)) is not None and not g.is_finished
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


def _secrets(settings: Settings, chosen: Iterable[Lane] = ()) -> tuple[str, ...]:
    """Every key this run could know: OPENAI_API_KEY, each STREAMCHAT_KEY_<NAME>, each lane's."""
    keys = [settings.api_key, *(e.api_key for e in settings.endpoints)]
    keys += [lane.endpoint.api_key for lane in chosen if isinstance(lane.endpoint, Endpoint)]
    return tuple(dict.fromkeys(k for k in keys if k))


def _one_line(message: str, secrets: Sequence[str]) -> str:
    return " ".join(errors.redact(message, tuple(secrets)).split())


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:  # no traceback, ever
        return f"streamchat: {record.getMessage().splitlines()[0] if record.getMessage() else ''}"


def _quiet_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR)
