"""echostream-serve: the real-time translation server (uvicorn + FastAPI).

GET / (web page: microphone or file), GET /health, GET /config, GET /protocol (the WebSocket
protocol as JSON), WS /ws. By default it serves the shipped model (assets/).
"""
import argparse
import logging
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from .translate import add_model_args

    p = argparse.ArgumentParser(prog="echostream-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    add_model_args(p)
    m = p.add_argument_group("language pairs")
    m.add_argument("--pairs", nargs="+", metavar="PAIR", help="the shipped pairs to serve (default: every pair in the assets "
                                                               "folder; the first is what a 'start' without 'pair' gets)")
    m.add_argument("--add-pair", nargs=3, action="append", default=[], metavar=("NAME", "CHECKPOINT", "DATA_DIR"),
                   help="serve a fairseq-train checkpoint with its data folder as pair NAME too (repeatable)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-sessions", type=int, default=4, help="concurrent streaming sessions (default 4)")
    g.add_argument("--max-session-seconds", type=float, default=600.0, help="source seconds per session (default 600)")
    g.add_argument("--max-frame-bytes", type=int, default=1 << 20, help="largest binary frame (default 1 MiB)")
    g.add_argument("--max-frames-per-second", type=float, default=1000.0,
                   help="binary frames one connection may send per second; more are read more slowly, not dropped "
                        "(default 1000; the page sends about 375 at 48 kHz)")
    g.add_argument("--max-requests-per-second", type=float, default=20.0,
                   help="HTTP requests (page, API, example audio) and WebSocket handshakes one client address may make per "
                        "second, and in one burst; more wait their turn, none is refused (default 20; the page makes about "
                        "8 as it loads)")
    g.add_argument("--max-send-wait", type=float, default=10.0,
                   help="seconds a client may take none of its output (speech, text) before its session is dropped "
                        "('slow_reader', logged and counted) and its socket cut (default 10)")
    g.add_argument("--idle-before-start", type=float, default=10.0, help="seconds a connection may wait before 'start', and may take to send its HTTP request head "
                        "(default 10)")
    g.add_argument("--idle-between-frames", type=float, default=30.0, help="seconds a started session may send nothing (default 30)")
    g.add_argument("--max-session-wall", type=float, default=1200.0, help="wall-clock seconds per connection (default 1200)")
    g.add_argument("--max-connections", type=int, default=64, help="open WebSockets, started or not (default 64)")
    g.add_argument("--max-connections-per-client", type=int, default=8, help="open WebSockets per client address (default 8); it may hold 4 times as many TCP "
                        "connections in all (page and API requests, request heads still coming), more are cut")
    g.add_argument("--max-batch", type=int, default=16,
                   help="sessions stepped together, one batched forward per model stage (default 16); 1: every session "
                        "stepped alone, in parallel threads")
    g.add_argument("--engine-workers", type=int, default=0,
                   help="batches stepped in parallel threads (default 0: 1 when batching, --max-sessions with --max-batch 1)")
    a = p.add_argument_group("access")
    a.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (e.g. https://example.org) whose pages may connect besides the server's own; '*' allows any "
                        "(repeatable)")
    a.add_argument("--token", default=os.environ.get("ECHOSTREAM_TOKEN"),
                   help="require this bearer token (Authorization header or ?token= on the WebSocket URL; the page passes its "
                        "own ?token= on). Default: $ECHOSTREAM_TOKEN; none: no token")
    a.add_argument("--forwarded-allow-ips", default="127.0.0.1", metavar="IPS",
                   help="comma-separated proxies (or '*') whose X-Forwarded-For names the client, for the per-client "
                        "cap and logs behind a load balancer (default 127.0.0.1; '' trusts none)")
    g.add_argument("--shutdown-grace", type=float, default=10.0,
                   help="on SIGTERM/SIGINT: seconds sessions in flight may take to finish before they are closed with a "
                        "'shutdown' error (default 10); new connections are refused at once")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--log-level", default="info")
    g.add_argument("--log-json", action="store_true", help="log one JSON object per line (time, level, logger, message) on stderr")
    return p


def main(argv=None):
    from ..config import parse_args
    from .translate import load, shipped

    p = build_parser()
    args = parse_args(p, argv)
    if args.log_json:  # before the model loads: everything it logs, and Python warnings, are JSON lines too
        from logging.config import dictConfig

        dictConfig(json_log_config())
        logging.captureWarnings(True)
    import torch
    import uvicorn

    from ..server.app import Access, Pair, ServerLimits, create_app

    try:
        limits = ServerLimits(args.max_sessions, args.max_session_seconds, args.max_frame_bytes, int(args.segment_ms),
                              idle_before_start_s=args.idle_before_start, idle_between_frames_s=args.idle_between_frames,
                              max_session_wall_s=args.max_session_wall, max_connections=args.max_connections,
                              max_connections_per_client=args.max_connections_per_client, max_batch=args.max_batch,
                              engine_workers=args.engine_workers, max_frames_per_second=args.max_frames_per_second,
                              max_send_wait_s=args.max_send_wait, max_requests_per_second=args.max_requests_per_second)
    except ValueError as e:
        p.error(str(e))
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        print(f"warning: listening on {args.host} without a token: anyone who can reach this port can use the server "
              "(set --token or ECHOSTREAM_TOKEN)", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    from .. import assets
    from ..streaming.engine import PolicyConfig, load_resources

    if args.pair:
        p.error("--pair picks the pair of echostream-translate; the server serves --pairs (default: all shipped)")
    pairs = []
    if args.checkpoint or args.data_dir:
        if args.pairs:
            p.error("--pairs names shipped pairs; it does not go with --checkpoint (use --add-pair for more models)")
        res, policy = load(args, p)
        pairs.append(Pair("custom", res, policy, [], {"checkpoint": str(args.checkpoint)}))
    else:
        available = shipped(args, p)
        for name in args.pairs or list(available):
            if name not in available:
                p.error(f"--pairs {name}: not shipped in {args.assets or assets.default_assets()}; pairs: {', '.join(available)}")
            res, policy = load(args, p, root=available[name])
            pairs.append(Pair(name, res, policy, assets.read_examples(available[name]),
                              {"checkpoint": str(available[name] / "model" / "checkpoint.pt")}))
    for name, ckpt, data in args.add_pair:
        if name in {x.name for x in pairs}:
            p.error(f"--add-pair {name}: a pair of that name is served already")
        for path in (ckpt, data):
            if not Path(path).exists():
                p.error(f"--add-pair {name}: no such file or folder: {path}")
        res = load_resources(ckpt, data, device=args.device)
        try:
            policy = PolicyConfig.from_args(args, punct_model=res.punct is not None, model_dir=data)
        except ValueError as e:
            p.error(str(e))
        pairs.append(Pair(name, res, policy, [], {"checkpoint": str(ckpt)}))
    describe = {"device": str(pairs[0].res.device), "config": str(args.config) if args.config else None}
    app = create_app(pairs, limits, describe, Access(tuple(args.allow_origin), args.token or None))
    logging.getLogger("echostream_fairseq").setLevel(args.log_level.upper())
    from ..server.transport import bounded_protocols

    http_protocol, ws_protocol = bounded_protocols(limits.idle_before_start_s, limits.max_sockets_per_client,
                                                   args.forwarded_allow_ips.split(","), limits.max_send_wait_s)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, http=http_protocol, ws=ws_protocol,
                            proxy_headers=bool(args.forwarded_allow_ips), forwarded_allow_ips=args.forwarded_allow_ips or None, ws_max_size=max(2 * args.max_frame_bytes, 1 << 20),
                            log_config=json_log_config() if args.log_json else uvicorn.config.LOGGING_CONFIG)
    draining_server(config, app.state.drain, args.shutdown_grace).run()


class JsonFormatter(logging.Formatter):
    def format(self, record):
        import json

        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def json_log_config() -> dict:
    """A logging config for uvicorn and the project: every record as one JSON line on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {"default": handler},
            "root": {"handlers": ["default"], "level": "INFO"},
            "loggers": {name: {"handlers": ["default"], "propagate": False} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}}


def draining_server(config, drain, grace_s: float):
    """uvicorn's server, except that the first SIGTERM/SIGINT drains the sessions in flight (the
    app's ``drain``: refuse new ones, let these finish within ``grace_s``, close the rest with a
    ``shutdown`` error) before uvicorn stops and the process exits 0; a second signal stops at once."""
    import asyncio

    import uvicorn

    log = logging.getLogger("echostream_fairseq")

    class Server(uvicorn.Server):
        draining = None

        def handle_exit(self, sig, frame):
            if self.draining is None:
                log.warning("signal %s: draining sessions (grace %g s)", sig, grace_s)
                self.draining = asyncio.ensure_future(self._drain(sig, frame))
            else:
                super().handle_exit(sig, frame)

        async def _drain(self, sig, frame):
            closed = await drain(grace_s)
            log.warning("drained: %d connection(s) closed with 'shutdown'", closed)
            self.should_exit = True  # a clean stop: exit 0 (uvicorn's own handler re-raises the signal)

    return Server(config)


if __name__ == "__main__":
    sys.exit(main())
