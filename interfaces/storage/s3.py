"""Media storage on any S3-compatible service (AWS S3, MinIO, Cloudflare R2) through boto3.

Upload URLs are SigV4 presigned PUTs that sign Content-Type and Content-Length, so the
storage itself answers 403 to a body of another type or size, or after expiry. Two
clients: one for Kairos's own calls (``endpoint_url``, often an internal address such as
``http://minio:9000``) and one that signs URLs for clients (``presign_endpoint_url``, the
address they can reach).

What goes wrong is logged in full on ``kairos.media``; the errors raised say only what a user
may read (they end up in delivery results, notifications and emails), never the endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from application.media import MediaChanged, MediaUnavailable, StoredObject

_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}
MAX_KEY_BYTES = 1024
"""S3's limit: a longer key cannot name an object, so its URL is no file of ours."""

log = logging.getLogger("kairos.media")


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        presign_endpoint_url: str | None = None,
        public_base_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        options: dict[str, Any] = {
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": config,
        }
        self._client = boto3.client("s3", endpoint_url=endpoint_url, **options)
        self._signer = boto3.client(
            "s3", endpoint_url=presign_endpoint_url or endpoint_url, **options
        )
        base = public_base_url or f"{presign_endpoint_url or endpoint_url}/{bucket}"
        self._public_base = base.rstrip("/") + "/"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (development and tests; production buckets are
        provisioned with their public-read policy by the operator)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)

    def check(self) -> str | None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            log.warning("media storage: bucket %s answered %s", self.bucket, _code(error))
            return f"unreachable: {_code(error)}"
        except BotoCoreError as error:
            log.warning("media storage: bucket %s is unreachable: %s", self.bucket, error)
            return f"unreachable: {type(error).__name__}"
        return None

    def upload_url(self, key: str, *, content_type: str, size: int, expires_in: int) -> str:
        url: str = self._signer.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url

    def public_url(self, key: str) -> str:
        return self._public_base + quote(key)

    def key_for_url(self, url: str) -> str | None:
        if not url.startswith(self._public_base):
            return None
        key = unquote(url[len(self._public_base) :].split("?", 1)[0])
        if not key or ".." in key.split("/") or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            return None
        return key

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise _unavailable("stat", key, error) from None
        except BotoCoreError as error:
            raise _unavailable("stat", key, error) from None
        return StoredObject(
            key=key,
            size=int(head["ContentLength"]),
            content_type=head.get("ContentType"),
            etag=head.get("ETag"),
        )

    def read(self, key: str, *, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        body = self._get(key, Range=f"bytes={start}-{start + length - 1}")
        data: bytes = body.read()
        return data

    def chunks(self, key: str, *, chunk_size: int, etag: str | None) -> Iterator[bytes]:
        body = self._get(key, **({"IfMatch": etag} if etag else {}))
        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, OSError) as error:
            raise _unavailable("read", key, error) from None
        finally:
            body.close()

    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int) -> StoredObject:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentLength=size,
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("write", key, error) from None
        stored = self.stat(key)
        if stored is None:
            log.warning("media storage: %s vanished right after it was written", key)
            raise MediaUnavailable(UNAVAILABLE)
        return stored

    def _get(self, key: str, **extra: str) -> Any:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        except ClientError as error:
            code = _code(error)
            if code in _MISSING or code in _CHANGED:
                raise MediaChanged(
                    "the media file was deleted or replaced after the post was scheduled; "
                    "upload it again and edit the post"
                ) from None
            raise _unavailable("read", key, error) from None
        except BotoCoreError as error:
            raise _unavailable("read", key, error) from None


UNAVAILABLE = "media storage cannot be reached just now"


def _unavailable(action: str, key: str, error: Exception) -> MediaUnavailable:
    """Log what went wrong, for operators; tell users only that storage is unavailable."""
    log.warning("media storage: %s of %s failed: %s", action, key, error)
    return MediaUnavailable(UNAVAILABLE)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))
