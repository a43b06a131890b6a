"""``python -m transformer``: serve raw-record predictions in front of the predictor."""

from __future__ import annotations

import sys

from common.cli import parse_settings
from common.logs import configure_logging
from transformer.settings import KSERVE_FLAGS, TransformerSettings


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then serve until stopped."""
    settings = parse_settings(
        TransformerSettings, argv, prog="python -m transformer", tolerated=KSERVE_FLAGS
    )
    configure_logging(settings.log_level)

    # kserve parses sys.argv when first imported, with its own types and
    # defaults; it must not see ours (it rejects --predictor_request_timeout_seconds 0.5).
    sys.argv = sys.argv[:1]
    from common.model_server import ServerOptions, serve
    from transformer.model import SalesQuantityTransformer

    serve(
        [SalesQuantityTransformer(settings)],
        ServerOptions.from_settings(settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
