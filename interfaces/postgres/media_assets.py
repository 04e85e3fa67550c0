"""The ``media_assets`` table: each media URL an organization's posts reference, as checked."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.postgres import PostgresDatastore

from application.media import MediaAsset

_COLUMNS = (
    "organization_id, url, key, content_type, size, etag, width, height, duration_ms, recorded_at"
)


class PostgresMediaAssets:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    def get(self, organization_id: UUID, url: str) -> MediaAsset | None:
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT {_COLUMNS} FROM media_assets WHERE organization_id = %s AND url = %s",
                (organization_id, url),
            )
            row = curs.fetchone()
        return MediaAsset(**row) if row else None

    def add(self, asset: MediaAsset) -> MediaAsset:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO media_assets ({_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (organization_id, url) DO NOTHING",
                (
                    asset.organization_id,
                    asset.url,
                    asset.key,
                    asset.content_type,
                    asset.size,
                    asset.etag,
                    asset.width,
                    asset.height,
                    asset.duration_ms,
                    asset.recorded_at,
                ),
            )
        stored = self.get(asset.organization_id, asset.url)
        return stored if stored is not None else asset
