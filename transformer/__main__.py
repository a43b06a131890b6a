"""``python -m transformer``: serve raw-record predictions in front of the predictor."""

from __future__ import annotations

import sys
from typing import Any

from common.core.cli import parse_settings
from common.core.logs import configure_logging
from common.serving.launch import serve_models
from transformer.settings import TransformerSettings


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then serve until stopped."""
    settings = parse_settings(TransformerSettings, argv, prog="python -m transformer")
    configure_logging(settings.log_level)

    def transformer() -> list[Any]:
        from transformer.model import SalesQuantityTransformer

        return [SalesQuantityTransformer(settings)]

    serve_models(settings, transformer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
