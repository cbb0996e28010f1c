"""`trackstream subscribe` (placeholder: implemented by its issue)."""

from __future__ import annotations

import argparse

from pipelines.errors import UserError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    sub.add_parser(name, help="(not implemented yet)")


def main(args: argparse.Namespace) -> int:
    raise UserError("'subscribe' is not implemented yet")
