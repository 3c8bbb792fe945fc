"""`python -m examples.pos_backend [--host 127.0.0.1] [--port 8000]`, from the repository root."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.pos_backend", description="Run the example POS backend on uvicorn."
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    arguments = parser.parse_args()
    uvicorn.run("examples.pos_backend.app:app", host=arguments.host, port=arguments.port)


if __name__ == "__main__":
    main()
