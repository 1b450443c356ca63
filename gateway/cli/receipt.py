"""`gateway receipt verify FILE --jwks URL|FILE`: check a release's receipt offline and print it."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from gateway.auth.receipts import ReceiptInvalid, verify_receipt


def _jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:
            data = json.loads(response.read())
    else:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the JWKS is not a JSON object")
    return data


def _receipt_text(path: str) -> str:
    text = (sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")).strip()
    if text.startswith("{"):  # the JSON form of GET /v1/queries/{id}/receipt
        text = str(json.loads(text)["receipt"])
    return text


def cmd_receipt_verify(args: argparse.Namespace) -> int:
    try:
        claims = verify_receipt(_receipt_text(args.file), _jwks(args.jwks))
    except (ReceiptInvalid, OSError, ValueError, KeyError) as exc:
        print(f"gateway: receipt NOT verified: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(claims, ensure_ascii=False, indent=2, sort_keys=True))
    print(f"ok: receipt of {claims.get('query_id')} verified", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    receipt = sub.add_parser("receipt", help="signed receipts of releases").add_subparsers(dest="action",
                                                                                        required=True)
    verify = receipt.add_parser("verify", help="verify a receipt with the gateway's JWKS; print its claims")
    verify.add_argument("file", help="the receipt (compact JWS, or its JSON form); - for standard input")
    verify.add_argument("--jwks", required=True, help="the JWKS: a URL (…/.well-known/jwks.json) or a file")
    verify.set_defaults(func=cmd_receipt_verify)
