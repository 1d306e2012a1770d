"""Run a fake API from the command line for a local sandbox.

    python -m bridge.fakes omnisend --port 9001 [--api-key KEY] [--rate 400]
    python -m bridge.fakes ometria --port 9002 [--api-key KEY] [--rate 8]
    python -m bridge.fakes omneo --port 9003 [--api-key TOKEN] [--rate 600] [--webhook-url URL --webhook-secret S]

Point the bridge at it with OMNISEND_BASE_URL=http://127.0.0.1:9001 (or OMETRIA_BASE_URL, or
OMNEO_BASE_URL=http://127.0.0.1:9003/api with OMNEO_API_TOKEN) and the same key. The fake Omneo fires its
profile webhooks at --webhook-url (the bridge's /webhooks/omneo) signed with --webhook-secret. Inspect with `curl :9001/_fake/requests`; inject trouble with
`curl -XPOST :9001/_fake/fail -d '{"mode": "status", "status": 503, "count": 3}'`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from bridge.fakes.ometria import create_ometria_app
from bridge.fakes.omneo import create_omneo_app
from bridge.fakes.omnisend import create_omnisend_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.fakes", description="Run a fake destination API.")
    parser.add_argument("api", choices=("omnisend", "ometria", "omneo"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default 9001 (omnisend) / 9002 (ometria) / 9003 (omneo)")
    parser.add_argument("--api-key", default=None, help="key the fake accepts (default: <api>-test-key)")
    parser.add_argument("--rate", type=int, default=None, help="requests per window (default 400/min or 8/s)")
    parser.add_argument("--webhook-url", default=None, help="omneo: where to fire profile webhooks")
    parser.add_argument("--webhook-secret", default="", help="omneo: the secret the webhooks are signed with")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    key = args.api_key or f"{args.api}-test-key"
    if args.api == "omnisend":
        app = create_omnisend_app(key, requests_per_minute=args.rate or 400)
        port = args.port or 9001
    elif args.api == "ometria":
        app = create_ometria_app(key, requests_per_second=args.rate or 8)
        port = args.port or 9002
    else:
        app = create_omneo_app(key, requests_per_minute=args.rate or 600)
        app.state.fake.emit_to(args.webhook_url, args.webhook_secret)
        port = args.port or 9003
    uvicorn.run(app, host=args.host, port=port, log_level=args.log_level, lifespan="off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
