"""Run the OSS stand-in alone: ``python -m sandbox.oss --config oss.yaml [--host H] [--port P]``.

The YAML holds the fields of :class:`sandbox.oss.OssConfig` (data_dir relative to the YAML file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import pathlib

import yaml

from .config import OssConfig
from .server import RunningOssServer, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.oss", description=__doc__)
    parser.add_argument("--config", required=True, type=pathlib.Path, help="YAML file with the OSS config")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = yaml.safe_load(args.config.read_text()) or {}
    config = OssConfig.from_dict(data, base_dir=args.config.resolve().parent)

    def announce(server: RunningOssServer) -> None:
        print(f"OSS sandbox endpoint: {server.endpoint}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port, ready=announce))


if __name__ == "__main__":
    main()
