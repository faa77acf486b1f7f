"""echostream-serve: the real-time translation server (uvicorn + FastAPI).

GET / (web page: microphone or file), GET /health, GET /config, GET /protocol (the WebSocket
protocol as JSON), WS /ws. By default it serves the shipped model (assets/).
"""
import argparse
import logging
import sys
from pathlib import Path


def main(argv=None):
    from .translate import add_model_args, load

    p = argparse.ArgumentParser(prog="echostream-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    add_model_args(p, pause_default=600.0, punct_delay_default=2)
    g = p.add_argument_group("limits")
    g.add_argument("--max-sessions", type=int, default=4, help="concurrent streaming sessions (default 4)")
    g.add_argument("--max-session-seconds", type=float, default=600.0, help="source seconds per session (default 600)")
    g.add_argument("--max-frame-bytes", type=int, default=1 << 20, help="largest binary frame (default 1 MiB)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    import torch
    import uvicorn

    from ..server.app import ServerLimits, create_app

    if args.threads:
        torch.set_num_threads(args.threads)
    res, policy = load(args, p)
    limits = ServerLimits(args.max_sessions, args.max_session_seconds, args.max_frame_bytes, int(args.segment_ms))
    describe = {"checkpoint": str(args.checkpoint or (args.assets or "assets") / Path("model/checkpoint.pt")),
                "vocoder": res.vocoder is not None}
    app = create_app(res, policy, limits, describe)
    logging.getLogger("echostream_fairseq").setLevel(args.log_level.upper())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws_max_size=max(2 * args.max_frame_bytes, 1 << 20))


if __name__ == "__main__":
    sys.exit(main())
