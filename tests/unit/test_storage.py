"""One place turns a location into a filesystem: S3 from the AWS variables, checked early.

The S3 clients here are real (pyarrow's, the AWS SDK inside it); the store they are
pointed at is a port nothing listens on, which is what a store that went away looks
like. tests/integration/test_s3.py runs the same code against a real S3 server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pytest

from common.core.cli import parse_settings
from common.core.storage import check_location, filesystem, s3_options
from common.protocol.answers import Prediction
from harness.servers import free_port
from monitoring.errors import BadInput, Unavailable
from monitoring.sources import list_files
from monitoring.storage import filesystem as job_filesystem
from monitoring.storage import write_bytes
from tests.unit.records import VALID
from transformer.capture import CAPTURED_ROWS, DROPPED_ROWS, CaptureStore
from transformer.features import compute_features
from transformer.settings import TransformerSettings

AWS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "key-id",
    "AWS_SECRET_ACCESS_KEY": "secret",
}


def options_of(fs: pafs.FileSystem) -> dict[str, Any]:
    """The options a pyarrow S3FileSystem was made with (what it pickles)."""
    _, (options,) = fs.__reduce__()
    assert isinstance(options, dict)
    return options


def test_an_s3_uri_gets_endpoint_scheme_region_and_keys_from_the_aws_variables() -> None:
    fs, path = filesystem("s3://bucket/captures/", AWS)
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/captures"
    options = options_of(fs)
    assert options["endpoint_override"] == "127.0.0.1:8333"
    assert options["scheme"] == "http"
    assert options["region"] == "eu-west-1"
    assert (options["access_key"], options["secret_key"]) == ("key-id", "secret")
    # an S3-compatible endpoint is addressed by path (host/bucket/key), not bucket.host
    assert options["force_virtual_addressing"] is False
    assert options["allow_bucket_creation"] is False  # buckets are made by their owner


def test_the_service_specific_endpoint_and_aws_region_win() -> None:
    given = {
        "AWS_ENDPOINT_URL_S3": "https://s3.internal:9000",
        "AWS_ENDPOINT_URL": "http://elsewhere",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    assert s3_options(given) == {
        "endpoint_override": "s3.internal:9000",
        "scheme": "https",
        "region": "eu-central-1",
    }
    assert s3_options({"AWS_DEFAULT_REGION": "us-west-2"}) == {"region": "us-west-2"}


def test_without_keys_the_aws_sdks_own_chain_finds_the_credentials() -> None:
    # web identity (a service account's role), ~/.aws, instance metadata: nothing passed
    assert s3_options({"AWS_REGION": "eu-west-1"}) == {"region": "eu-west-1"}
    token = s3_options({**AWS, "AWS_SESSION_TOKEN": "token"})
    assert token["session_token"] == "token"


@pytest.mark.parametrize(
    ("location", "env", "says"),
    [
        ("s3://", {}, "'s3://' names no bucket: expected s3://BUCKET[/PREFIX]"),
        (
            "s3://bucket/x",
            {"AWS_ENDPOINT_URL": "minio:9000"},
            "AWS_ENDPOINT_URL='minio:9000' is invalid: expected http://HOST[:PORT]",
        ),
        (
            "s3://bucket/x",
            {"AWS_ENDPOINT_URL_S3": "http://minio:9000/bucket"},
            "AWS_ENDPOINT_URL_S3='http://minio:9000/bucket' is invalid",
        ),
        (
            "s3://bucket/x",
            {"AWS_ACCESS_KEY_ID": "key-id"},
            "AWS_SECRET_ACCESS_KEY is not set: S3 credentials need both keys, or neither",
        ),
    ],
)
def test_a_bad_location_or_variable_is_refused_with_a_message_naming_it(
    location: str, env: dict[str, str], says: str
) -> None:
    with pytest.raises(ValueError) as info:
        check_location(location, env)
    assert says in str(info.value)
    with pytest.raises(ValueError):
        filesystem(location, env)


def test_a_path_is_local_and_pyarrows_own_uri_options_are_left_to_pyarrow(
    tmp_path: Path,
) -> None:
    fs, path = filesystem(str(tmp_path / "x" / ".." / "capture"))
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "capture")
    fs, path = filesystem("s3://bucket/p?endpoint_override=127.0.0.1:1&scheme=http", AWS)
    options = options_of(fs)  # the URI's options alone: none of the variables
    assert path == "bucket/p" and options["endpoint_override"] == "127.0.0.1:1"
    assert not options["access_key"] and options["region"] != "eu-west-1"


def test_the_core_imports_no_pyarrow_until_a_location_is_opened() -> None:
    script = (
        "import sys, common.core.storage as s\n"
        "s.check_location('s3://bucket/x', {})\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


def test_the_transformer_refuses_a_bad_capture_uri_at_start_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "seaweedfs:8333")
    with pytest.raises(SystemExit) as info:
        parse_settings(
            TransformerSettings,
            ["--predictor_host", "p:80", "--capture_uri", "s3://bucket/captures"],
            prog="python -m transformer",
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--capture_uri" in err and "AWS_ENDPOINT_URL='seaweedfs:8333' is invalid" in err


def _gone() -> dict[str, str]:
    """S3 variables pointing at a port nothing listens on: a store that went away."""
    return {**AWS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}


def test_the_capture_store_counts_rows_it_cannot_write_to_a_store_that_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _gone().items():
        monkeypatch.setenv(name, value)
    store = CaptureStore("s3://bucket/captures", queue_rows=100, flush_seconds=60, batch_rows=100)
    records = {name: [value] * 3 for name, value in VALID.items()}
    prediction = Prediction(["high", "low"], np.tile([0.4, 0.6], (3, 1)), "sqc", "1")
    dropped = DROPPED_ROWS.labels("write_error")._value.get()
    captured = CAPTURED_ROWS._value.get()
    store.offer(records, compute_features(records), prediction, [("req", 3)])  # never raises
    store.close()
    assert DROPPED_ROWS.labels("write_error")._value.get() - dropped == 3
    assert CAPTURED_ROWS._value.get() == captured


def test_the_jobs_answer_a_store_that_is_gone_with_unavailable_naming_the_location(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _gone().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(Unavailable) as info:
        list_files("s3://bucket/captures")
    assert str(info.value).startswith("'s3://bucket/captures': the object store failed (")
    assert info.value.exit_code == 3
    with pytest.raises(Unavailable):
        write_bytes("s3://bucket/reports", "drift_report.json", b"{}")


def test_the_jobs_answer_a_bad_s3_variable_as_bad_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://store")
    with pytest.raises(BadInput, match="AWS_ENDPOINT_URL='ftp://store' is invalid"):
        job_filesystem("s3://bucket/captures")
